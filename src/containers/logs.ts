/**
 * Container logs: JSON lines (`{"t": time, "s": "stdout"|"stderr", "log": text}`, docker's
 * json-file idea) in `logs/container.log`, rotated by size into `container.log.1`. Rotation never
 * truncates silently: the count of lines dropped with the oldest file is kept in `logs/dropped`,
 * and readers print `[jiffy: N earlier lines dropped by log rotation]` before what is left.
 */
import { createReadStream, openSync, writeSync, closeSync, fstatSync, renameSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';

export type LogStream = 'stdout' | 'stderr';

export interface LogLine {
  t: string;
  s: LogStream;
  log: string;
}

/** Default size at which the current file rotates (JIFFY_LOG_MAX_BYTES overrides). */
export const DEFAULT_LOG_MAX_BYTES = Number(process.env.JIFFY_LOG_MAX_BYTES) || 10 * 1024 * 1024;

/** The marker line readers show for lines rotation dropped. */
export function droppedMarker(n: number): string {
  return `[jiffy: ${n} earlier lines dropped by log rotation]`;
}

/** Appends lines with synchronous writes (the monitor's only job; keeps ordering exact). */
export class LogWriter {
  private fd: number;
  private size: number;
  private lines = 0;
  private readonly partial: Record<LogStream, string> = { stdout: '', stderr: '' };

  constructor(private readonly dir: string, private readonly maxBytes = DEFAULT_LOG_MAX_BYTES) {
    this.fd = openSync(path.join(dir, 'container.log'), 'a');
    this.size = fstatSync(this.fd).size;
    if (this.size > 0) this.lines = countLines(path.join(dir, 'container.log'));
  }

  /** Add a chunk of output; complete lines are written, a trailing partial line waits. */
  write(stream: LogStream, chunk: Buffer | string): void {
    const text = this.partial[stream] + chunk.toString();
    const parts = text.split('\n');
    this.partial[stream] = parts.pop()!;
    for (const p of parts) this.append(stream, `${p}\n`);
  }

  /** Write any partial lines and close the file. */
  close(): void {
    for (const s of ['stdout', 'stderr'] as const) if (this.partial[s]) this.append(s, this.partial[s]);
    this.partial.stdout = this.partial.stderr = '';
    closeSync(this.fd);
  }

  private append(s: LogStream, log: string): void {
    const buf = Buffer.from(`${JSON.stringify({ t: new Date().toISOString(), s, log })}\n`);
    if (this.size > 0 && this.size + buf.length > this.maxBytes) this.rotate();
    writeSync(this.fd, buf);
    this.size += buf.length;
    this.lines++;
  }

  private rotate(): void {
    const cur = path.join(this.dir, 'container.log');
    const old = `${cur}.1`;
    if (existsSync(old)) addDropped(this.dir, countLines(old));
    closeSync(this.fd);
    renameSync(cur, old);
    this.fd = openSync(cur, 'a');
    this.size = 0;
    this.lines = 0;
  }
}

function countLines(file: string): number {
  const b = readFileSync(file);
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}

function addDropped(dir: string, n: number): void {
  const f = path.join(dir, 'dropped');
  const prev = existsSync(f) ? Number(readFileSync(f, 'utf8')) || 0 : 0;
  writeFileSync(`${f}.tmp`, String(prev + n));
  renameSync(`${f}.tmp`, f);
}

/** Lines dropped so far by rotation. */
export async function droppedLines(dir: string): Promise<number> {
  return Number(await fs.readFile(path.join(dir, 'dropped'), 'utf8').catch(() => '0')) || 0;
}

async function readFileLines(file: string, out: LogLine[]): Promise<void> {
  if (!existsSync(file)) return;
  const rl = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // A line cut by a crash mid-write: show it rather than lose it.
      out.push({ t: '', s: 'stderr', log: `${line}\n` });
    }
  }
}

/** Every retained line, oldest first, preceded by the rotation marker when lines were dropped. */
export async function readLogs(dir: string, opts: { tail?: number; rotatedOnly?: boolean } = {}): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  await readFileLines(path.join(dir, 'container.log.1'), lines);
  if (!opts.rotatedOnly) await readFileLines(path.join(dir, 'container.log'), lines);
  const dropped = await droppedLines(dir);
  const kept = opts.tail !== undefined ? lines.slice(Math.max(0, lines.length - opts.tail)) : lines;
  const hidden = dropped + (lines.length - kept.length);
  if (dropped > 0 && opts.tail === undefined) return [{ t: '', s: 'stderr', log: `${droppedMarker(hidden)}\n` }, ...kept];
  return kept;
}

/** Size of the current log file (where a follower starts to see only new lines). */
export async function logOffset(dir: string): Promise<number> {
  return (await fs.stat(path.join(dir, 'container.log')).catch(() => ({ size: 0 }))).size;
}

/**
 * Follow the current file from byte `from` (default: its end), calling `onLine` for each line,
 * until `stop()` resolves true (checked before each read, so the last lines are not lost).
 * Handles rotation by starting over on the new file.
 */
export async function followLogs(dir: string, onLine: (l: LogLine) => void, stop: () => Promise<boolean>, from?: number): Promise<void> {
  const file = path.join(dir, 'container.log');
  let offset = from ?? (await logOffset(dir));
  let rest = '';
  for (;;) {
    const done = await stop();
    const st = await fs.stat(file).catch(() => undefined);
    if (st && st.size < offset) offset = 0; // rotated
    if (st && st.size > offset) {
      const fh = await fs.open(file, 'r');
      const buf = Buffer.alloc(st.size - offset);
      await fh.read(buf, 0, buf.length, offset);
      await fh.close();
      offset = st.size;
      const parts = (rest + buf.toString()).split('\n');
      rest = parts.pop()!;
      for (const p of parts) if (p) onLine(JSON.parse(p) as LogLine);
    }
    if (done) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Print lines to our stdout / stderr. */
export function printLine(l: LogLine): void {
  (l.s === 'stderr' ? process.stderr : process.stdout).write(l.log);
}

