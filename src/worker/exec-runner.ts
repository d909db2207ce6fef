import { LogBuffer } from '../functions/outcome.js';
import type { FunctionVersion } from '../functions/spec.js';
import { crashError, InstanceError, seconds } from './instance.js';
import { TASK_ROOT, type ExitInfo, type Spawner } from './spawner.js';

/** Largest stdout an exec function may return (bigger results fail clearly instead of exhausting memory). */
export const MAX_RESULT_BYTES = 6 * 1024 * 1024;

export interface ExecRun {
  stdout: Buffer;
  logs: string;
  exit: ExitInfo;
  bootMs: number;
  handlerMs: number;
}

/** argv of an exec function: its handler split on spaces, `./x` taken relative to the code dir. */
export function execArgs(handler: string): string[] {
  return handler.trim().split(/\s+/).map((a, i) => (i === 0 && a.startsWith('./') ? `${TASK_ROOT}/${a.slice(2)}` : a));
}

/**
 * The `exec` runtime: every invocation is a fresh container running the handler command with the
 * event on stdin and the result on stdout (the simplest runtime; always a cold start, which is
 * exactly what the fork-server launcher makes cheap). Non-zero exit → function_error with the
 * stderr tail; OOM and signals → the same errors a shim instance gives.
 */
export async function runExec(spawner: Spawner, fn: FunctionVersion, id: string, input: Buffer, env: Record<string, string>, timeoutMs: number): Promise<ExecRun> {
  const t0 = performance.now();
  const proc = await spawner.spawn({ id, fn, args: execArgs(fn.settings.handler), env: { ...fn.settings.env, ...env }, cwd: TASK_ROOT });
  const bootMs = performance.now() - t0;
  const out: Buffer[] = [];
  let outBytes = 0;
  let tooBig = false;
  const logs = new LogBuffer();
  proc.stdout.on('data', (c: Buffer) => {
    outBytes += c.length;
    if (outBytes > MAX_RESULT_BYTES) { tooBig = true; proc.kill('SIGKILL'); return; }
    out.push(c);
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => logs.append(c));
  proc.stdin.on('error', () => {}); // the command may exit without reading its input
  proc.stdin.end(input);
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
  const exit = await proc.wait();
  clearTimeout(timer);
  const handlerMs = performance.now() - t0 - bootMs;
  if (timedOut) {
    throw new InstanceError('deadline_exceeded', `function ${fn.name}@${fn.version} did not finish within its ${seconds(timeoutMs)} s timeout; the container was killed (raise --timeout if it needs longer)`, { timeoutMs }, logs.toString());
  }
  if (tooBig) throw new InstanceError('function_error', `function ${fn.name}@${fn.version} wrote more than ${MAX_RESULT_BYTES} bytes to stdout; return less or store the result elsewhere`, {}, logs.toString());
  if (exit.oomKilled || exit.signal != null) {
    const e = crashError(fn, exit);
    throw new InstanceError(e.code, e.message, e.details, logs.toString());
  }
  if (exit.exitCode !== 0) {
    const tail = logs.toString().trim().split('\n').slice(-5).join('\n');
    throw new InstanceError('function_error', `function ${fn.name}@${fn.version} exited with code ${exit.exitCode}${tail ? `: ${tail}` : ''}`, { exitCode: exit.exitCode }, logs.toString());
  }
  return { stdout: Buffer.concat(out), logs: logs.toString(), exit, bootMs, handlerMs };
}
