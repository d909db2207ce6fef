/**
 * Sandboxes booted through the launcher's fork server (server mode: `jiffy sandbox serve`,
 * `jiffy up`). ContainerManager still creates each container — record, image lease, config.json,
 * and the rootfs: a warm overlay mounted at `containers/<id>/merged` in the host mount namespace,
 * handed to the launcher as `root.path`. Keeping the mount on the host (rather than the launcher's
 * `rootfsOverlay`, which lives only in the container's mount namespace) is what lets file
 * read/write go through the host path and lets commit read the upper dir at its usual place; it
 * is also the fastest, since the warm pool mounted it before anyone asked.
 *
 * Boot = one `boot` request (a clone in the server, with a pre-made cgroup renamed to
 * `jiffy/<id>` and a pre-made netns) instead of the OCI runtime CLI plus pid-file polling. The
 * record is then marked running with this process as its monitor, so reconcile leaves it alone
 * while we live; the exit is recorded here (status, signal, OOM kill, peak memory) and the rootfs
 * unmounted. Exec = one `exec` request with the container's own process settings from its
 * config.json (user, capabilities, no_new_privs, rlimits): never root with full caps.
 *
 * The containers die with the launcher (parent-death signal in the server). If this process dies
 * first, the records still say running with a dead monitor, so the next manager's reconcile marks
 * them exited and takes their mounts and cgroups down.
 */
import { JiffyError } from '../errors.js';
import { pidStartTime, unwatch, watch } from '../containers/boot.js';
import { removeCgroupWhenEmpty } from '../containers/cgroup.js';
import type { ContainerManager } from '../containers/manager.js';
import { resolveEnv } from '../containers/spec.js';
import type { ContainerRecord, CreateOptions } from '../containers/types.js';
import type { ContainerHandle, ExitStatus, Launcher, OciProcess, OciRuntimeSpec } from '../launcher/index.js';
import type { Logger } from '../log.js';
import { boundedExecution, checkExec } from './exec.js';
import { killTree } from './process-tree.js';
import type { SandboxExecOptions, SandboxExecution } from './types.js';

interface Live {
  handle: ContainerHandle;
  /** The record as saved when the init started (status running). */
  record: ContainerRecord;
  process: OciProcess;
  /** Settles once the exit is recorded and the rootfs unmounted. */
  finished: Promise<void>;
}

export class LaunchedContainers {
  private readonly live = new Map<string, Live>();

  constructor(
    readonly launcher: Launcher,
    private readonly containers: ContainerManager,
    private readonly log?: Logger,
  ) {}

  /** True when `id` runs in this launcher (else it was booted by another process). */
  has(id: string): boolean {
    return this.live.has(id);
  }

  /**
   * The running record of a container of ours, without reading the disk: while its handle has not
   * reported an exit it is running (whoever kills it — even another process — makes the exit
   * frame arrive, and finish() drops it from here before recording the exit).
   */
  record(id: string): ContainerRecord | undefined {
    return this.live.get(id)?.record;
  }

  /**
   * Create the container (ContainerManager) and boot it in the launcher; returns its id.
   * `onCreated` runs as soon as the id is known, concurrently with the boot (the caller's own
   * record); a failure of either removes the container.
   */
  async boot(opts: CreateOptions, onCreated?: (id: string) => Promise<void>): Promise<string> {
    const { record: rec, spec: config } = await this.containers.createWithSpec(opts);
    const created = onCreated?.(rec.id);
    created?.catch(() => undefined); // awaited below; not unhandled if the boot fails first
    let handle: ContainerHandle | undefined;
    try {
      const spec = config as unknown as OciRuntimeSpec;
      handle = await this.launcher.boot({ id: rec.id, config: spec, stdin: 'null', stdout: 'null', stderr: 'null' });
      const pid = handle.pid;
      const pidStart = await pidStartTime(pid);
      watch(this.containers, rec.id);
      const record: ContainerRecord = { ...rec, state: { ...rec.state, status: 'running', pid, pidStart, monitorPid: process.pid, startedAt: new Date().toISOString() } };
      // A plain save, not a locked update: nobody else writes the record of a container that only
      // this call knows the id of yet.
      await Promise.all([this.containers.records.save(record), created]);
      const h = handle;
      // Attached only after "running" is written, so "exited" always comes second.
      const finished = h.wait().then((st) => this.finish(rec.id, st), (e: Error) => this.finish(rec.id, undefined, e));
      this.live.set(rec.id, { handle: h, record, process: spec.process, finished });
    } catch (e) {
      unwatch(this.containers, rec.id);
      await handle?.kill('SIGKILL').catch(() => undefined);
      await handle?.wait().catch(() => undefined);
      await this.containers.remove(rec.id, { force: true }).catch(() => undefined);
      throw e;
    }
    return rec.id;
  }

  /** Run a command in launcher-booted container `rec` with its init's security settings. */
  async exec(rec: ContainerRecord, o: SandboxExecOptions): Promise<SandboxExecution> {
    checkExec(rec, o);
    const live = this.live.get(rec.id);
    if (!live) throw new JiffyError('failed_precondition', `sandbox ${rec.id.slice(0, 12)} was not booted by this server's launcher: remove it and create a new one`);
    const p = live.process;
    const proc: OciProcess = {
      args: o.cmd, env: resolveEnv({ Env: rec.process.env }, o.env ?? []), cwd: o.cwd ?? rec.process.cwd,
      user: p.user, capabilities: p.capabilities, rlimits: p.rlimits, noNewPrivileges: p.noNewPrivileges,
    };
    const h = await this.launcher.exec(rec.id, proc, { stdin: o.stdin !== undefined ? 'pipe' : 'null' });
    let ended = false;
    const exited = h.wait().then((st) => {
      ended = true;
      return { exitCode: st.exitCode, signal: st.signal };
    }, (e: unknown) => {
      ended = true;
      throw e;
    });
    // Checked at kill time: once the exec has been reaped its pid may belong to someone else.
    const kill = () => { if (!ended) killTree(h.pid); };
    return boundedExecution({ stdout: h.stdout, stderr: h.stderr, stdin: h.stdin, kill, exited }, o);
  }

  /** Freeze / thaw a container's processes (commit copies the upper dir meanwhile). */
  async pause(id: string): Promise<void> {
    await this.launcher.pause(id);
  }

  async resume(id: string): Promise<void> {
    await this.launcher.resume(id);
  }

  /** SIGKILL a container of ours and wait until its exit is recorded (no-op for others). */
  async stop(id: string): Promise<void> {
    const live = this.live.get(id);
    if (!live) return;
    await live.handle.kill('SIGKILL').catch(() => undefined);
    await live.finished;
  }

  /** Stop every container of ours (a closing server: its sandboxes do not outlive it). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.stop(id)));
  }

  /** Record the exit and take the rootfs down; the launcher removed the cgroup itself. */
  private async finish(id: string, st?: ExitStatus, err?: Error): Promise<void> {
    this.live.delete(id);
    const rec = await this.containers.records.load(id).catch(() => undefined);
    if (!rec) return unwatch(this.containers, id);
    // Each step on its own: the exit must be recorded even when an unmount fails (a record left
    // "running" with a live monitor would make every later wait/remove poll forever).
    await this.containers.snapshots.unmount(id).catch((e) => this.log?.warn({ err: e, id }, 'unmounting a stopped sandbox rootfs failed; remove retries'));
    // A dead server could not remove the cgroup (its containers died with it, and their tasks may
    // still be leaving it: EBUSY is retried for a bounded time).
    if (err) {
      await removeCgroupWhenEmpty(rec.cgroupPath).catch((e) => this.log?.warn({ err: e, id, cgroup: rec.cgroupPath }, 'removing the cgroup of a sandbox whose launcher died failed; remove it by hand (rmdir)'));
    }
    await this.containers.records.update(id, (r) => {
      r.state = {
        ...r.state, status: 'exited', pid: undefined, pidStart: undefined, monitorPid: undefined,
        exitCode: st?.exitCode ?? 255, signal: st?.signal ?? undefined, oomKilled: !!st?.oomKilled,
        peakMemoryBytes: st?.peakMemoryBytes || undefined, finishedAt: new Date().toISOString(), error: err?.message,
      };
    }).catch((e) => this.log?.warn({ err: e, id }, 'recording the exit of a launcher-booted sandbox failed'));
    unwatch(this.containers, id);
  }
}
