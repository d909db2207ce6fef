/**
 * ContainerManager: the docker container lifecycle on Jiffy's store, snapshots and OCI runtime.
 * create → start (detached: a monitor process) or run (in this process) → stop / kill → rm;
 * plus exec, diff, commit, cp, top, pause. All state is on disk under `containers/<id>/`, so
 * another manager on the same root (another CLI call, a restarted worker) sees the same
 * containers; every list/get reconciles records with reality first (./reconcile.ts).
 * exec, diff, commit and cp load their modules on first use: a one-command CLI process
 * (`jiffy run --rm`) should not pay for the layer-tar code it never runs.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JiffyError } from '../errors.js';
import type { Image, ImageStore } from '../images/store.js';
import type { Logger } from '../log.js';
import type { Change } from '../snapshots/diff.js';
import { OverlaySnapshotter, type Snapshot } from '../snapshots/snapshotter.js';
import { WarmPool, pidAlive, type WarmPoolOptions } from '../snapshots/warm-pool.js';
import { bootContainer, isOurProcess, type BootContext } from './boot.js';
import { cgroupPids, containerCgroup, setFrozen } from './cgroup.js';
import { CreateCache } from './create-cache.js';
import type { CommitOptions } from './commit.js';
import type { ExecOptions, ExecResult } from './exec.js';
import { LogWriter, type LogStream } from './logs.js';
import { reconcile } from './reconcile.js';
import { ContainerRecords, generateName } from './records.js';
import { containerLeaseId, deleteContainerFiles, removeContainerFiles } from './remove.js';
import { currentRuntime, leafCgroup, signalNumber } from './runtime.js';
import { buildSpec, resolveCommand, resolveEnv } from './spec.js';
import type { ContainerRecord, CreateOptions, ExitInfo } from './types.js';
import { resolveUser } from './user.js';
import { ensureWorkdir } from './workdir.js';

export interface ContainerManagerOptions {
  store: ImageStore;
  /** H1's launcher binding; containers run through the OCI runtime CLI (see ./runtime.ts) either way. */
  launcher?: unknown;
  /** Keep pre-mounted rootfs per image (default on; short-lived CLI processes turn it off). */
  warm?: WarmPoolOptions | false;
  log?: Logger;
}

/** Options of run(): create options plus how to attach. */
export interface RunOptions extends CreateOptions {
  /** Start under a detached monitor and return at once (exit resolves when it ends). */
  detach?: boolean;
  /** stdio of the container for an in-process run (default: output piped to the log and onOutput). */
  stdio?: StdioOptions;
  onOutput?: (stream: LogStream, chunk: Buffer) => void;
}

const CREATE_KEYS = [
  'image', 'name', 'autoRemove', 'logMaxBytes', 'entrypoint', 'cmd', 'env', 'workdir', 'user', 'hostname',
  'memoryBytes', 'cpus', 'pidsLimit', 'network', 'binds', 'readonlyRoot', 'capabilities',
] as const;

/** Only the create options (run() passes stdio and callbacks that do not belong in the record). */
function createOptionsOf(o: CreateOptions): CreateOptions {
  const out: Record<string, unknown> = {};
  for (const k of CREATE_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out as unknown as CreateOptions;
}

const MONITOR = fileURLToPath(new URL('./monitor.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ContainerManager {
  readonly root: string;
  readonly store: ImageStore;
  readonly records: ContainerRecords;
  readonly snapshots: OverlaySnapshotter;
  readonly warm?: WarmPool;
  private readonly ctx: BootContext;
  private swept?: Promise<unknown>;
  private readonly cache: CreateCache;

  constructor(opts: ContainerManagerOptions) {
    this.store = opts.store;
    this.root = opts.store.paths.root;
    this.records = new ContainerRecords(this.root);
    this.snapshots = new OverlaySnapshotter(this.root);
    this.ctx = { root: this.root, records: this.records, snapshots: this.snapshots };
    this.cache = new CreateCache(this.store);
    if (opts.warm !== false) this.warm = new WarmPool(this.snapshots, { ...(opts.warm ?? {}), log: opts.log });
  }

  /** Create a container (rootfs prepared, config.json written, status created). */
  async create(options: CreateOptions): Promise<ContainerRecord> {
    return (await this.createWithSpec(options)).record;
  }

  /** create(), also returning the OCI config it wrote (a launcher boot need not read it back). */
  async createWithSpec(options: CreateOptions): Promise<{ record: ContainerRecord; spec: Record<string, unknown> }> {
    const opts = createOptionsOf(options);
    // Spares of dead processes only exist where warm pools run; a CLI `run` skips the scan of
    // every container directory (`ps` sweeps, see list()).
    if (this.warm) await this.sweep();
    const image = await this.cache.image(opts.image);
    const parent = { id: image.id, lowerPaths: image.layers.map((l) => l.lowerPath) };
    const snap = opts.readonlyRoot
      ? await this.snapshots.view(parent)
      : this.warm?.take(parent) ?? (await this.snapshots.prepare(parent));
    const id = snap.key;
    const name = opts.name ?? generateName(id);
    try {
      await this.records.reserveName(name, id);
    } catch (e) {
      await this.snapshots.remove(id);
      throw e;
    }
    try {
      // Independent writes run together; the record comes last, so a record always has its
      // config.json and lease.
      const [{ rec, spec }] = await Promise.all([
        this.buildRecord(id, name, image, snap, opts),
        this.store.leases.write(
          { manifests: [image.manifestDigest], blobs: [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)], layers: image.layers.map((l) => l.chainId) },
          { id: containerLeaseId(id) },
        ),
        fs.mkdir(this.records.path(id, 'logs'), { recursive: true }),
      ]);
      await this.records.save(rec);
      return { record: rec, spec };
    } catch (e) {
      await this.records.releaseName(name, id);
      await this.snapshots.remove(id);
      throw e;
    }
  }

  private async buildRecord(id: string, name: string, image: Image, snap: Snapshot, opts: CreateOptions): Promise<{ rec: ContainerRecord; spec: Record<string, unknown> }> {
    const cfg = image.config.config ?? {};
    const argv = resolveCommand(cfg, opts);
    const user = await this.cache.user(image, snap.merged, opts.user ?? cfg.User);
    const env = resolveEnv(cfg, opts.env, user.home);
    const cwd = opts.workdir ?? (cfg.WorkingDir || '/');
    await ensureWorkdir(snap.merged, cwd, opts);
    const cgroupPath = containerCgroup(id);
    const runtime = currentRuntime();
    const spec = buildSpec({
      args: argv, env, cwd, uid: user.uid, gid: user.gid, additionalGids: user.additionalGids, rootPath: snap.merged,
      cgroupsPath: `/${leafCgroup(runtime, cgroupPath)}`, memoryInSpec: runtime.kind === 'jiffy-launch', options: opts,
    });
    await fs.writeFile(this.records.path(id, 'config.json'), JSON.stringify(spec, null, 2));
    const rec: ContainerRecord = {
      id, name, created: new Date().toISOString(), image: opts.image, imageId: image.id,
      path: argv[0], args: argv.slice(1), options: opts,
      process: { env, cwd, uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      state: { status: 'created' }, runtimeId: id, runtime, cgroupPath, bundle: this.records.path(id), imageConfig: image.config,
    };
    return { rec, spec };
  }

  /** Start a created or exited container under a detached monitor; resolves once it runs (or ended). */
  async start(idOrName: string): Promise<ContainerRecord> {
    const rec = await this.get(idOrName);
    if (rec.state.status === 'running' || rec.state.status === 'paused') return rec;
    // The monitor's own errors (it logs to stderr) go to monitor.log, so a failed start can say why.
    const monitorLog = this.records.path(rec.id, 'monitor.log');
    const errFd = openSync(monitorLog, 'a');
    const child = spawn(process.execPath, [MONITOR, this.root, rec.id], { detached: true, stdio: ['ignore', 'ignore', errFd], env: process.env });
    closeSync(errFd);
    child.unref();
    const before = { started: rec.state.startedAt, finished: rec.state.finishedAt };
    const changed = (r: ContainerRecord) =>
      (r.state.status === 'running' && r.state.startedAt !== before.started) ||
      (r.state.status === 'exited' && r.state.finishedAt !== before.finished);
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      const cur = await this.records.load(rec.id).catch(() => undefined);
      if (!cur) return { ...rec, state: { ...rec.state, status: 'exited' } }; // --rm already removed it
      if (changed(cur)) return cur;
      if (child.exitCode !== null || (child.pid && !pidAlive(child.pid))) {
        const last = await this.records.load(rec.id).catch(() => undefined);
        if (!last || changed(last)) return last ?? cur;
        const why = last.state.error ?? (await fs.readFile(monitorLog, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
        throw new JiffyError('internal', `the monitor of ${rec.name} exited before the container started: ${why || 'no error recorded'}; see ${monitorLog}, or run it attached (jiffy start -a)`);
      }
      await sleep(wait);
    }
  }

  /** Create and run. Detached: via the monitor. Otherwise in this process, output to log + onOutput. */
  async run(opts: RunOptions): Promise<{ id: string; record: ContainerRecord; exit: Promise<ExitInfo> }> {
    const rec = await this.create(opts);
    if (opts.detach) {
      await this.start(rec.id);
      return { id: rec.id, record: rec, exit: this.wait(rec.id) };
    }
    const stdio = opts.stdio ?? ['ignore', 'pipe', 'pipe'];
    // The log file is opened on first output: `run --rm` with inherited stdio never writes one.
    let log: LogWriter | undefined;
    let closed: Promise<unknown> = Promise.resolve();
    // --rm: delete instead of recording the exit, once the output (and so the log) is complete.
    const onExit = opts.autoRemove
      ? async (r: ContainerRecord) => {
          await closed;
          log?.close();
          log = undefined;
          await deleteContainerFiles(this.ctx, r);
        }
      : undefined;
    const booted = await bootContainer(this.ctx, rec.id, stdio, { monitorPid: process.pid, onExit }).catch(async (e) => {
      if (opts.autoRemove) await this.remove(rec.id, { force: true }).catch(() => undefined);
      throw e;
    });
    const tee = (s: LogStream) => (c: Buffer) => {
      (log ??= new LogWriter(this.records.path(rec.id, 'logs'), opts.logMaxBytes)).write(s, c);
      opts.onOutput?.(s, c);
    };
    booted.child.stdout?.on('data', tee('stdout'));
    booted.child.stderr?.on('data', tee('stderr'));
    closed = Promise.all([booted.child.stdout, booted.child.stderr].map((s) => s && new Promise((r) => s.once('close', r))));
    const exit = booted.exited.then(async (info) => {
      await closed;
      log?.close();
      return info;
    });
    await booted.started;
    return { id: rec.id, record: rec, exit };
  }

  private async sweep(): Promise<void> {
    await (this.swept ??= WarmPool.sweep(this.snapshots).catch(() => 0));
  }

  /** Resolves with the exit status once the container has exited (polls its record). */
  async wait(idOrName: string): Promise<ExitInfo> {
    const id = (await this.get(idOrName)).id;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      const rec = await this.records.load(id).catch(() => undefined);
      if (!rec) return { exitCode: 0, oomKilled: false, finishedAt: new Date().toISOString(), error: 'removed' };
      const cur = await reconcile(this.ctx, rec);
      if (cur.state.status === 'exited' || cur.state.status === 'created') {
        const s = cur.state;
        return { exitCode: s.exitCode ?? 0, signal: s.signal, oomKilled: !!s.oomKilled, peakMemoryBytes: s.peakMemoryBytes, finishedAt: s.finishedAt ?? '', error: s.error };
      }
      await sleep(wait);
    }
  }

  /** SIGTERM (or the image's StopSignal), then SIGKILL after `timeoutSec` (default 10). */
  async stop(idOrName: string, opts: { timeoutSec?: number } = {}): Promise<ContainerRecord> {
    const rec = await this.get(idOrName);
    if (rec.state.status !== 'running' && rec.state.status !== 'paused') return rec;
    if (rec.state.status === 'paused') await this.unpause(rec.id);
    await this.signal(rec, rec.imageConfig.config?.StopSignal ?? 'SIGTERM');
    const deadline = Date.now() + (opts.timeoutSec ?? 10) * 1000;
    while (Date.now() < deadline && (await isOurProcess(rec.state.pid, rec.state.pidStart))) await sleep(10);
    if (await isOurProcess(rec.state.pid, rec.state.pidStart)) await this.signal(rec, 'SIGKILL');
    await this.wait(rec.id);
    return this.get(rec.id);
  }

  /** Send a signal (default SIGKILL) to the container's init process. */
  async kill(idOrName: string, sig: string | number = 'SIGKILL'): Promise<void> {
    const rec = await this.get(idOrName);
    if (rec.state.status !== 'running' && rec.state.status !== 'paused') {
      throw new JiffyError('failed_precondition', `container ${rec.name} is not running (${rec.state.status})`);
    }
    await this.signal(rec, sig);
  }

  private async signal(rec: ContainerRecord, sig: string | number): Promise<void> {
    const num = signalNumber(sig);
    if (!(await isOurProcess(rec.state.pid, rec.state.pidStart))) return;
    try {
      process.kill(rec.state.pid!, num);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }

  /** Stop and restart (same rootfs, same upper dir). */
  async restart(idOrName: string, opts: { timeoutSec?: number } = {}): Promise<ContainerRecord> {
    const rec = await this.stop(idOrName, opts);
    await this.records.update(rec.id, (r) => void (r.state.restartCount = (r.state.restartCount ?? 0) + 1));
    return this.start(rec.id);
  }

  /** Remove a container; a running one only with `force` (killed first). */
  async remove(idOrName: string, opts: { force?: boolean } = {}): Promise<void> {
    const rec = await this.get(idOrName);
    if (rec.state.status === 'running' || rec.state.status === 'paused') {
      if (!opts.force) {
        throw new JiffyError('failed_precondition', `container ${rec.name} is running: stop it first (jiffy stop ${rec.name}) or use rm -f`);
      }
      if (rec.state.status === 'paused') await this.unpause(rec.id);
      await this.signal(rec, 'SIGKILL');
      await this.wait(rec.id);
    }
    const cur = await this.records.load(rec.id).catch(() => undefined);
    if (cur) await removeContainerFiles(this.ctx, cur);
  }

  /** Freeze all processes of a running container (cgroup freezer). */
  async pause(idOrName: string): Promise<void> {
    const rec = await this.get(idOrName);
    if (rec.state.status !== 'running') throw new JiffyError('failed_precondition', `container ${rec.name} is not running`);
    await setFrozen(rec.cgroupPath, true);
    await this.records.update(rec.id, (r) => void (r.state.status = 'paused'));
  }

  /** Thaw a paused container. */
  async unpause(idOrName: string): Promise<void> {
    const rec = await this.get(idOrName);
    if (rec.state.status !== 'paused') return;
    await setFrozen(rec.cgroupPath, false);
    await this.records.update(rec.id, (r) => void (r.state.status = 'running'));
  }

  /** Run `cmd` inside a running container (see ./exec.ts); `user` names resolve via its rootfs. */
  async exec(idOrName: string, cmd: string[], opts: ExecOptions & { user?: string } = {}): Promise<ExecResult> {
    const rec = await this.get(idOrName);
    let ids: { uid?: number; gid?: number; additionalGids?: number[] } = {};
    if (opts.user) {
      const snap = await this.snapshots.get(rec.id);
      const u = await resolveUser(snap.merged, opts.user);
      ids = { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids };
    }
    const { execInContainer } = await import('./exec.js');
    return execInContainer(rec, cmd, { ...opts, ...ids });
  }

  /** Changes in the container's rootfs (A/C/D), sorted by path. */
  async diff(idOrName: string): Promise<Change[]> {
    const rec = await this.get(idOrName);
    const snap = await this.snapshots.get(rec.id);
    if (!snap.upper) return [];
    const { diffUpper } = await import('../snapshots/diff.js');
    return diffUpper(snap.upper, snap.lower.map((l) => path.resolve(this.root, l)));
  }

  /** Commit the container's changes as a new image (one layer + one history entry). */
  async commit(idOrName: string, opts: CommitOptions = {}): Promise<Image> {
    const { commitContainer } = await import('./commit.js');
    return commitContainer(this.store, this.snapshots, await this.get(idOrName), opts);
  }

  /** Every container (running only unless `all`), newest first, reconciled. */
  async list(opts: { all?: boolean } = { all: true }): Promise<ContainerRecord[]> {
    await this.sweep();
    const recs = await Promise.all((await this.records.list()).map((r) => reconcile(this.ctx, r)));
    return opts.all ? recs : recs.filter((r) => r.state.status === 'running' || r.state.status === 'paused');
  }

  /** One container by id, unique id prefix or name, reconciled. */
  async get(idOrName: string): Promise<ContainerRecord> {
    return reconcile(this.ctx, await this.records.find(idOrName));
  }

  /** Copy from the container (`cp CTR:/path HOST`). */
  async copyOut(idOrName: string, ctrPath: string, hostPath: string): Promise<void> {
    const { copyOut } = await import('./copy.js');
    await this.withRootfs(idOrName, false, (rootfs) => copyOut(rootfs, ctrPath, hostPath));
  }

  /** Copy into the container (`cp HOST CTR:/path`); a running container is frozen meanwhile. */
  async copyIn(idOrName: string, hostPath: string, ctrPath: string): Promise<void> {
    const { copyIn } = await import('./copy.js');
    await this.withRootfs(idOrName, true, (rootfs) => copyIn(rootfs, hostPath, ctrPath));
  }

  private async withRootfs(idOrName: string, freeze: boolean, fn: (rootfs: string) => Promise<void>): Promise<void> {
    const rec = await this.get(idOrName);
    const running = rec.state.status === 'running';
    const snap = await this.snapshots.get(rec.id);
    if (snap.readonly && freeze) throw new JiffyError('failed_precondition', `container ${rec.name} has a read-only rootfs`);
    const mountedHere = !running && rec.state.status !== 'paused' && !snap.readonly;
    if (mountedHere) await this.snapshots.mount(rec.id);
    if (running && freeze) await setFrozen(rec.cgroupPath, true);
    try {
      await fn(snap.merged);
    } finally {
      if (running && freeze) await setFrozen(rec.cgroupPath, false);
      const cur = await this.records.load(rec.id).catch(() => undefined);
      if (mountedHere && cur?.state.status !== 'running' && cur?.state.status !== 'created') await this.snapshots.unmount(rec.id);
    }
  }

  /** Processes of a running container: pid (host), uid and command line. */
  async top(idOrName: string): Promise<Array<{ pid: number; uid: number; cmd: string }>> {
    const rec = await this.get(idOrName);
    const out = [];
    for (const pid of await cgroupPids(rec.cgroupPath)) {
      const cmd = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean).join(' ');
      const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
      out.push({ pid, uid, cmd });
    }
    return out;
  }

  /** The log directory of a container. */
  async logDir(idOrName: string): Promise<string> {
    return this.records.path((await this.get(idOrName)).id, 'logs');
  }

  /** Mount spare rootfs for `image` ahead of time (a worker does this for its functions' images). */
  async prewarm(image: string): Promise<void> {
    if (!this.warm) return;
    const img = await this.store.resolve(image);
    await this.warm.warm({ id: img.id, lowerPaths: img.layers.map((l) => l.lowerPath) });
  }

  /** Unmount warm spares (containers keep running; they are on disk). */
  async close(): Promise<void> {
    await this.warm?.close();
  }
}
