import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { JiffyError } from '../errors.js';
import type { ImageStore } from '../images/store.js';
import { launcherBinary } from '../paths.js';
import type { FunctionVersion } from '../functions/spec.js';
import { FunctionImages } from './function-image.js';
import { functionSpec } from './function-spec.js';
import { instancesDir, makeInstanceDir, staleInstanceDirs, startTime } from './instance-dirs.js';
import type { ExitInfo, SpawnedProcess, SpawnRequest, Spawner } from './spawner.js';

const run = promisify(execFile);


/**
 * Boots function containers with the launcher's one-shot OCI command line: overlay rootfs mounted
 * with `jiffy-launch mount-overlay` (short lowerdirs relative to the store root), then
 * `jiffy-launch run --bundle` with the instance's stdio as pipes, `--report` for exit code,
 * signal, OOM kill and peak memory. After exit the rootfs is unmounted and the bundle removed.
 * A process exec of the launcher per container makes boots slower than the fork server, and the
 * rootfs is a host mount (a SIGKILLed worker leaves it for `reapStale`); it is the fallback when the
 * fork server cannot start (JIFFY_FN_SPAWNER=cli forces it). Warm invocations are as fast either way.
 */
export class CliSpawner implements Spawner {
  private readonly images: FunctionImages;
  private binChecked?: Promise<void>;
  private readonly live = new Set<Promise<unknown>>();
  private readonly bin = launcherBinary();
  private readonly stateRoot: string;

  private readonly instances: string;

  constructor(private readonly store: ImageStore) {
    this.stateRoot = path.join(store.paths.run, 'fn-oci');
    this.instances = instancesDir(store.paths.root);
    this.images = new FunctionImages(store);
  }

  /**
   * Removes instance bundles whose worker process is gone (a SIGKILLed worker leaves its overlay
   * mounts behind): kills the orphaned container, waits for its launcher to clean its cgroup, then
   * unmounts and removes the bundle. Bundles of live workers (sharing this root) are left alone.
   */
  async reapStale(): Promise<number> {
    const stale = await staleInstanceDirs(this.store.paths.root);
    for (const dir of stale) {
      const pid = Number.parseInt(await fs.readFile(path.join(dir, 'pid'), 'utf8').catch(() => ''), 10);
      if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      const launcher = Number.parseInt(await fs.readFile(path.join(dir, 'launcher.pid'), 'utf8').catch(() => ''), 10);
      for (let i = 0; i < 100 && launcher && (await startTime(launcher)); i++) await new Promise((r) => setTimeout(r, 20));
      await this.teardown(dir);
    }
    return stale.length;
  }

  async prepare(fn: FunctionVersion): Promise<void> {
    await this.lookup(fn);
  }

  /** The version's image, once the launcher binary this spawner execs is known to exist. */
  private async lookup(fn: FunctionVersion) {
    this.binChecked ??= fs.access(this.bin).catch((e) => {
      this.binChecked = undefined; // checked again next time: it may be built by then
      throw new JiffyError('failed_precondition', `launcher ${this.bin} is missing; build it with make -C native (or bash scripts/setup.sh)`, { cause: e });
    });
    await this.binChecked;
    return this.images.get(fn);
  }

  async spawn(req: SpawnRequest): Promise<SpawnedProcess> {
    const p = await this.lookup(req.fn);
    const dir = path.join(this.instances, req.id);
    const rootfs = path.join(dir, 'rootfs');
    await makeInstanceDir(dir, ['upper', 'work', 'rootfs']);
    try {
      await run(this.bin, ['mount-overlay', '--lower', p.lower.join(':'), '--upper', path.join(dir, 'upper'), '--work', path.join(dir, 'work'), '--cwd', this.store.paths.root, rootfs]);
      const env = mergeEnv(p.env, { HOME: '/tmp', ...req.env });
      const spec = functionSpec({ args: req.args, env, cwd: req.cwd, hostname: req.fn.name.slice(0, 63), rootPath: rootfs, settings: req.fn.settings });
      await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(spec));
    } catch (e) {
      await this.teardown(dir);
      throw new JiffyError('unavailable', `preparing container ${req.id} failed: ${(e as Error).message}`, { cause: e });
    }
    return this.boot(req.id, dir);
  }

  private async boot(id: string, dir: string): Promise<SpawnedProcess> {
    const report = path.join(dir, 'exit.json');
    const pidFile = path.join(dir, 'pid');
    const child = spawn(this.bin, ['--root', this.stateRoot, 'run', '--bundle', dir, '--pid-file', pidFile, '--report', report, id], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject); });
    await fs.writeFile(path.join(dir, 'launcher.pid'), String(child.pid));
    let killWith: NodeJS.Signals | number | undefined;
    let pid = 0;
    const exit = new Promise<number>((resolve) => child.once('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15))));
    const readPid = async () => {
      for (let wait = 1; pid === 0 && child.exitCode === null; wait = Math.min(wait * 2, 10)) {
        pid = Number.parseInt(await fs.readFile(pidFile, 'utf8').catch(() => ''), 10) || 0;
        if (!pid) await new Promise((r) => setTimeout(r, wait));
      }
      if (pid && killWith !== undefined) try { process.kill(pid, killWith); } catch { /* gone */ }
    };
    void readPid();
    const waited = exit.then(async (code): Promise<ExitInfo> => {
      const rep = JSON.parse(await fs.readFile(report, 'utf8').catch(() => 'null')) as { exitCode: number; signal: string | null; oomKilled: boolean; peakMemoryBytes: number } | null;
      await this.teardown(dir);
      return rep ? { exitCode: rep.signal ? null : rep.exitCode, signal: rep.signal, oomKilled: rep.oomKilled, peakMemoryBytes: rep.peakMemoryBytes } : { exitCode: code, signal: null, oomKilled: false };
    });
    this.live.add(waited);
    void waited.finally(() => this.live.delete(waited));
    return {
      pid: child.pid!,
      stdin: child.stdin!,
      stdout: child.stdout!,
      stderr: child.stderr!,
      wait: () => waited,
      // The container's init (pid 1 in its namespace) ignores signals it has no handler for unless
      // they come from outside, so signal it directly rather than through `run`'s forwarding.
      kill: (sig = 'SIGKILL') => {
        killWith = sig;
        if (pid) try { process.kill(pid, sig); } catch { /* gone */ }
      },
    };
  }

  private async teardown(dir: string): Promise<void> {
    const rootfs = path.join(dir, 'rootfs');
    await run(this.bin, ['umount', rootfs]).catch(() => run('umount', ['-l', rootfs]).catch(() => {}));
    await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.live]);
  }
}

function mergeEnv(image: string[], extra: Record<string, string>): string[] {
  const m = new Map<string, string>([['PATH', '/usr/local/bin:/usr/bin:/bin']]);
  for (const kv of image) {
    const eq = kv.indexOf('=');
    if (eq > 0) m.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  for (const [k, v] of Object.entries(extra)) m.set(k, v);
  return [...m].map(([k, v]) => `${k}=${v}`);
}
