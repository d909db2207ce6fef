/**
 * The launcher's host-namespace mount operations without a server: each call execs
 * `jiffy-launch` once (`mount-overlay`, `umount`). For CLI commands that do not keep a worker's
 * Launcher around. Failures come back as one JSON error line and become `JiffyError`s.
 */
import { execFile } from 'node:child_process';
import { JiffyError, type ErrorCode } from '../errors.js';
import { launcherBinary } from '../paths.js';

export interface OverlayMountOptions {
  lower: string[];
  upper?: string;
  work?: string;
  target: string;
  readonly?: boolean;
  /** Relative layer paths are resolved from here (keeps mount(2) option strings short). */
  cwd?: string;
}

function run(args: string[], binary = launcherBinary()): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['--log-format', 'json', ...args], (err, _stdout, stderr) => {
      if (!err) return resolve();
      const line = stderr.trim().split('\n').pop() ?? '';
      try {
        const e = (JSON.parse(line) as { error: { code: ErrorCode; message: string; errno?: number } }).error;
        reject(new JiffyError(e.code, e.message, { details: { errno: e.errno } }));
      } catch {
        reject(new JiffyError('unavailable', `${binary} ${args[0]} failed: ${stderr.trim() || err.message}`, { cause: err }));
      }
    });
  });
}

/** Mount an overlay at `target` in the host mount namespace. */
export async function mountOverlay(o: OverlayMountOptions, binary?: string): Promise<void> {
  if (o.lower.some((l) => l.includes(':'))) throw new JiffyError('invalid_argument', 'overlay lower paths must not contain ":"');
  const args = ['mount-overlay', ...o.lower.flatMap((l) => ['--lower', l])];
  if (o.upper) args.push('--upper', o.upper);
  if (o.work) args.push('--work', o.work);
  if (o.cwd) args.push('--cwd', o.cwd);
  if (o.readonly) args.push('--readonly');
  args.push(o.target);
  await run(args, binary);
}

/** Unmount `target` (lazily with detach). */
export async function umount(target: string, opts: { detach?: boolean } = {}, binary?: string): Promise<void> {
  await run(['umount', ...(opts.detach ? ['--detach'] : []), target], binary);
}
