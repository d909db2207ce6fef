/**
 * A long-lived bash process that runs one predefined command per request and times it with
 * $EPOCHREALTIME (microseconds), so a benchmark measures the command itself: not Node's spawn
 * cost, and not a wrapper such as `unshare` that only has to run once. Every CLI runtime in a
 * bench goes through the same driver, so the fork+exec floor it measures is the shared overhead.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { createInterface, type Interface } from 'node:readline';

/** Named commands the driver can run; `$ID` in an argument is replaced by the request's id. */
export type DriverCommands = Record<string, string[]>;

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Render one command as a bash word list, with "$ID" expanded at run time. */
function render(argv: string[]): string {
  return argv.map((a) => (a === '$ID' ? '"$id"' : shellQuote(a))).join(' ');
}

/** The driver script: `read name id` → run → print "rc t0 t1". stdout of commands is discarded. */
function script(commands: DriverCommands, errFile: string, prelude: string): string {
  const cases = Object.entries(commands).map(([name, argv]) =>
    `    ${shellQuote(name)}) t0=$EPOCHREALTIME; ${render(argv)} >/dev/null 2>${shellQuote(errFile)}; rc=$?; t1=$EPOCHREALTIME;;`);
  const untimed = Object.entries(commands).map(([name, argv]) =>
    `    ${shellQuote(`untimed:${name}`)}) ${render(argv)} >/dev/null 2>&1; rc=$?; t0=0; t1=0;;`);
  return [
    'set -u', prelude,
    'while read -r name id; do',
    '  case "$name" in',
    ...cases, ...untimed,
    '    *) rc=127; t0=0; t1=0;;',
    '  esac',
    '  echo "$rc $t0 $t1"',
    'done',
  ].join('\n');
}

/** Microseconds between two $EPOCHREALTIME strings, exactly (BigInt, no float rounding). */
function usBetween(t0: string, t1: string): bigint {
  const us = (t: string) => {
    const [s, f = ''] = t.split('.');
    return BigInt(s) * 1_000_000n + BigInt((f + '000000').slice(0, 6));
  };
  return us(t1) - us(t0);
}

export interface DriverResult {
  rc: number;
  ms: number;
  stderr: string;
}

/** One running driver. Create with {@link CliDriver.start}; `run` is strictly sequential. */
export class CliDriver {
  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly rl: Interface,
    private readonly errFile: string,
  ) {}

  /**
   * Start bash (optionally under `wrapper`, e.g. ['unshare', '-m']) with these commands.
   * `prelude` runs once before the loop (e.g. `umount /sys/fs/cgroup/unified || exit 1`).
   */
  static async start(commands: DriverCommands, opts: { wrapper?: string[]; prelude?: string; errFile: string }): Promise<CliDriver> {
    const body = script(commands, opts.errFile, opts.prelude ?? ':');
    const argv = [...(opts.wrapper ?? []), 'bash', '-c', body];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const rl = createInterface({ input: child.stdout });
    const d = new CliDriver(child, rl[Symbol.asyncIterator](), rl, opts.errFile);
    await Promise.race([once(child, 'spawn'), once(child, 'error').then(([e]) => { throw e; })]);
    return d;
  }

  /** Run command `name` with container id `id`; `timed: false` runs it outside the clock. */
  async run(name: string, id: string, timed = true): Promise<DriverResult> {
    this.child.stdin.write(`${timed ? name : `untimed:${name}`} ${id}\n`);
    const next = await this.lines.next();
    if (next.done) throw new Error(`bench driver exited (code ${this.child.exitCode}) while running ${name}`);
    const [rc, t0, t1] = next.value.trim().split(' ');
    const ms = timed ? Number(usBetween(t0, t1)) / 1000 : 0;
    const stderr = Number(rc) !== 0 ? await fs.readFile(this.errFile, 'utf8').catch(() => '') : '';
    return { rc: Number(rc), ms, stderr };
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    this.rl.close();
    if (this.child.exitCode === null) await once(this.child, 'exit');
    await fs.rm(this.errFile, { force: true });
  }
}
