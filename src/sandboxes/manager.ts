/**
 * SandboxManager: fast ephemeral test environments on ContainerManager (H5).
 *
 * Lifecycle of a sandbox:
 *   create   — a container from an image (or from a snapshot: a fork) whose init is an idle shell
 *              loop, started at once; its rootfs is an overlay with its own upper dir over the
 *              image's shared layers, so a fork costs one small directory, not a copy.
 *   exec     — commands enter the running container (its namespaces, cgroup and security
 *              settings), output streamed and bounded (./exec.ts); files go in and out through
 *              the rootfs (./files.ts).
 *   boot     — with a `launcher` (server mode) through its fork server, one request per boot and
 *              per exec (./launched.ts): the sandboxes then live as long as the launcher does.
 *              Without one (CLI direct mode) through the OCI runtime CLI, under a monitor, so
 *              they outlive the CLI call.
 *   snapshot — commit: the upper dir becomes one layer on top of the image, with a history entry;
 *              later forks share that layer read-only.
 *   expiry   — every record carries `expiresAt`; a reaper timer removes expired sandboxes, and since
 *              the expiry is on disk a restarted manager (or the next CLI call) still enforces it.
 *   remove   — kill, unmount, delete the upper dir, release the image lease, drop the record.
 */
import fs from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { JiffyError, hasCode } from '../errors.js';
import type { ContainerManager } from '../containers/manager.js';
import { normalizeCapabilities } from '../containers/security.js';
import { resolveEnv } from '../containers/spec.js';
import { resolveImage } from '../build/runtime-images.js';
import type { ContainerRecord, CreateOptions } from '../containers/types.js';
import { normalizeRef, type Image, type ImageStore } from '../images/store.js';
import type { Logger } from '../log.js';
import type { Launcher } from '../launcher/index.js';
import { execStreaming } from './exec.js';
import { readSandboxFile, writeSandboxFile } from './files.js';
import { LaunchedContainers } from './launched.js';
import { SandboxPool, type SandboxPoolOptions } from './pool.js';
import { SandboxRecords } from './records.js';
import type { Sandbox, SandboxCreateOptions, SandboxExecOptions, SandboxExecution, SandboxSnapshot } from './types.js';

export interface SandboxManagerOptions {
  containers: ContainerManager;
  store: ImageStore;
  /**
   * A started fork-server launcher (server mode): sandboxes boot and exec through it, and die
   * with it. Without one they boot through the OCI runtime CLI and outlive this process.
   */
  launcher?: Launcher;
  log?: Logger;
  /**
   * Who watches a sandbox's init: `in-process` (default; this process boots it — fastest, for a
   * long-lived server) or `monitor` (a detached monitor per sandbox — for short-lived CLI calls).
   * Either way the sandbox keeps running if this process exits.
   */
  boot?: 'in-process' | 'monitor';
  /** How often the reaper looks for expired sandboxes, ms (default 1000; 0 = no timer, call reap()). */
  reapIntervalMs?: number;
  /** Image when create() gets neither image nor from (default busybox:latest). */
  defaultImage?: string;
  /** Keep booted sandboxes ready per configuration (./pool.ts); default none. */
  pool?: SandboxPoolOptions;
}

export const DEFAULT_TTL_S = 300;
export const MAX_TTL_S = 86_400;
export const MAX_COUNT = 64;
const DEFAULT_MEMORY_MB = 512;
const PIDS_LIMIT = 1024;

/** pid 1 of a sandbox: sleeps (and reaps) forever; exits cleanly on TERM. */
const IDLE_INIT = ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done"];

export class SandboxManager {
  readonly containers: ContainerManager;
  readonly store: ImageStore;
  readonly records: SandboxRecords;
  private readonly log?: Logger;
  private readonly bootMode: 'in-process' | 'monitor';
  private readonly defaultImage: string;
  private timer?: NodeJS.Timeout;
  private reaping?: Promise<number>;
  private readonly pool?: SandboxPool;
  private readonly launched?: LaunchedContainers;
  /** Commits in flight of launcher-booted sandboxes: the launcher refuses execs into a frozen one. */
  private readonly committing = new Map<string, Promise<unknown>>();
  private swept = false;
  private readonly images = new LRUCache<string, { stamp: string; image: Image }>({ max: 32 });

  constructor(opts: SandboxManagerOptions) {
    this.containers = opts.containers;
    this.store = opts.store;
    this.log = opts.log;
    this.records = new SandboxRecords(opts.store.paths.root);
    this.bootMode = opts.boot ?? 'in-process';
    this.defaultImage = opts.defaultImage ?? 'busybox:latest';
    if (opts.launcher) this.launched = new LaunchedContainers(opts.launcher, opts.containers, opts.log);
    if (opts.pool && opts.pool.size > 0) this.pool = new SandboxPool(this.containers, (o) => this.boot(o), { ...opts.pool, log: opts.log });
    const every = opts.reapIntervalMs ?? 1000;
    if (every > 0) {
      this.timer = setInterval(() => void this.reap(), every);
      this.timer.unref();
      setImmediate(() => void (this.timer && this.reap()));
    }
  }

  /** Create `count` (default 1) sandboxes, each running; all or none (a failure removes the others). */
  async create(o: SandboxCreateOptions = {}): Promise<Sandbox[]> {
    const count = o.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      throw new JiffyError('invalid_argument', `count must be an integer from 1 to ${MAX_COUNT}, got ${count}`);
    }
    const ttlS = o.ttlS ?? DEFAULT_TTL_S;
    if (!(ttlS > 0 && ttlS <= MAX_TTL_S)) throw new JiffyError('invalid_argument', `ttl must be between 1 and ${MAX_TTL_S} seconds, got ${ttlS}`);
    resolveEnv({}, o.env ?? []); // throws invalid_argument on a bad entry
    const { ref, opts } = await this.containerOptions(o);
    const settled = await Promise.allSettled(Array.from({ length: count }, () => this.createOne(o, ref, opts, ttlS)));
    const made = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(made.map((s) => this.remove(s.id).catch(() => undefined)));
      throw failed.reason;
    }
    return made;
  }

  /**
   * The container options of a sandbox configuration. The sandbox env is not among them: it is
   * applied at each exec, so sandboxes that differ only in env share pool entries.
   */
  private async containerOptions(o: SandboxCreateOptions): Promise<{ ref: string; opts: CreateOptions }> {
    const ref = o.from ?? o.image ?? this.defaultImage;
    const image = await this.resolveRef(ref).catch((e) => {
      if (!hasCode(e, 'not_found')) throw e;
      throw new JiffyError('not_found', o.from ? `no snapshot ${o.from}: take one with POST /v1/sandboxes/:id/snapshot (jiffy sandbox snapshot)` : `no image ${ref}: pull or build it first (jiffy images lists what is there)`, { cause: e });
    });
    const capabilities = normalizeCapabilities(o.capabilities ?? []);
    const opts: CreateOptions = {
      image: image.id, capabilities, entrypoint: [IDLE_INIT[0]], cmd: IDLE_INIT.slice(1), hostname: 'sandbox',
      memoryBytes: (o.memoryMb ?? DEFAULT_MEMORY_MB) * 1024 * 1024, cpus: o.cpus, pidsLimit: PIDS_LIMIT, network: o.network ? 'host' : 'none',
    };
    return { ref, opts };
  }

  /**
   * resolveImage, remembered per ref while the names file (images.json) is the same file: it is
   * replaced by a rename on every tag change, so its inode, size and mtime tell when a tag may
   * have moved. Saves reading and parsing it plus the manifest and config on every create.
   */
  private async resolveRef(ref: string): Promise<Image> {
    const st = await fs.stat(this.store.paths.images, { bigint: true }).catch(() => undefined);
    const stamp = st ? `${st.ino}:${st.size}:${st.mtimeNs}` : '';
    const hit = this.images.get(ref);
    if (hit && stamp && hit.stamp === stamp) return hit.image;
    const image = await resolveImage(this.store, ref);
    if (stamp) this.images.set(ref, { stamp, image });
    return image;
  }

  /** Keep `pool.size` sandboxes of this configuration booted and ready (needs the pool option). */
  async warm(o: SandboxCreateOptions = {}): Promise<void> {
    if (!this.pool) throw new JiffyError('failed_precondition', 'no sandbox pool: construct the SandboxManager with pool: { size: N }');
    await this.pool.warm((await this.containerOptions(o)).opts);
  }

  /** A ready container from the pool (if it still runs), else a fresh boot. */
  private async takeOrBoot(opts: CreateOptions, onCreated?: (id: string) => Promise<void>): Promise<string> {
    const ready = this.pool?.take(opts);
    if (ready && this.launched?.has(ready)) return ready;
    if (ready) {
      const rec = await this.containers.get(ready).catch(() => undefined);
      if (rec?.state.status === 'running') return ready;
      await this.containers.remove(ready, { force: true }).catch(() => undefined);
    }
    return this.boot(opts, onCreated);
  }

  private async createOne(o: SandboxCreateOptions, ref: string, opts: CreateOptions, ttlS: number): Promise<Sandbox> {
    const memoryMb = o.memoryMb ?? DEFAULT_MEMORY_MB;
    const now = Date.now();
    const make = (id: string): Sandbox => ({
      id, image: ref, imageId: opts.image, ...(o.from ? { from: o.from } : {}), created: new Date(now).toISOString(),
      expiresAt: new Date(now + ttlS * 1000).toISOString(), ttlS, memoryMb, ...(o.cpus ? { cpus: o.cpus } : {}),
      network: !!o.network, env: o.env ?? [], capabilities: opts.capabilities ?? [], snapshots: [], status: 'running',
    });
    // With the launcher the record is written while the container boots (its id is known once
    // the container is created): one file write less on the create → first output path.
    let early: { id: string; saved: Promise<void> } | undefined;
    const saveEarly = (id: string) => (early = { id, saved: this.records.save(make(id)) }).saved;
    let id: string;
    try {
      id = await this.takeOrBoot(opts, this.launched ? saveEarly : undefined);
    } catch (e) {
      if (early) await this.records.remove(early.id).catch(() => undefined);
      throw e;
    }
    const sb = make(id);
    try {
      await (early?.id === id ? early.saved : this.records.save(sb));
      const rec = this.launched?.record(id) ?? (await this.containers.get(id));
      if (rec.state.status !== 'running') {
        throw new JiffyError('failed_precondition', `sandbox init exited at once (${rec.state.error ?? `exit code ${rec.state.exitCode}`}): the image needs /bin/sh and sleep (busybox has both)`);
      }
    } catch (e) {
      await this.remove(id).catch(() => undefined);
      throw e;
    }
    return sb;
  }

  /** Create and start the container; returns its id once its init runs (or has exited). */
  private async boot(opts: CreateOptions, onCreated?: (id: string) => Promise<void>): Promise<string> {
    if (this.launched) return this.launched.boot(opts, onCreated);
    if (this.bootMode === 'monitor') {
      const rec = await this.containers.create(opts);
      await this.containers.start(rec.id).catch(async (e) => {
        await this.containers.remove(rec.id, { force: true }).catch(() => undefined);
        throw e;
      });
      return rec.id;
    }
    const run = await this.containers.run({ ...opts, stdio: ['ignore', 'ignore', 'ignore'] });
    run.exit.catch((e) => this.log?.warn({ err: e, id: run.id }, 'sandbox init exit handling failed'));
    return run.id;
  }

  /** Run a command in a sandbox; output streams, `done` gives the outcome (see ./exec.ts). */
  async exec(id: string, o: SandboxExecOptions): Promise<SandboxExecution> {
    const { sb, rec } = await this.running(id);
    const opts = { ...o, env: [...sb.env, ...(o.env ?? [])] };
    if (this.launched?.has(rec.id)) {
      await this.committing.get(rec.id)?.catch(() => undefined);
      return this.launched.exec(rec, opts);
    }
    return execStreaming(rec, opts);
  }

  /** Write a file into a sandbox (parents created); returns the bytes written. */
  async writeFile(id: string, path: string, data: Buffer | string | Readable, mode?: number): Promise<number> {
    const { sb } = await this.running(id);
    return writeSandboxFile(await this.rootfs(sb.id), path, data, mode);
  }

  /** Read a regular file of a sandbox as a stream. */
  async readFile(id: string, path: string): Promise<Readable & { size?: number }> {
    const { sb } = await this.running(id);
    const { stream, size } = await readSandboxFile(await this.rootfs(sb.id), path);
    return Object.assign(stream, { size });
  }

  /** Commit the sandbox's changes as a new image (one layer + a history entry); forks start from it. */
  async snapshot(id: string, o: { ref?: string; message?: string } = {}): Promise<SandboxSnapshot> {
    const sb = await this.records.find(id);
    const ref = normalizeRef(o.ref ?? `sandbox-${sb.id.slice(0, 12)}:snap-${sb.snapshots.length + 1}`);
    const img = await this.commit(sb.id, { ref, message: o.message ?? `snapshot of sandbox ${sb.id.slice(0, 12)}`, author: 'jiffy sandbox' });
    await this.records.update(sb.id, (s) => void s.snapshots.push({ ref, id: img.id, created: new Date().toISOString() }));
    return { ref, id: img.id };
  }

  /** Every sandbox, with its current status. */
  async list(): Promise<Sandbox[]> {
    const all = await this.records.list();
    const out = await Promise.all(all.map((sb) => this.withStatus(sb)));
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  /** One sandbox by id or unique id prefix. */
  async get(id: string): Promise<Sandbox> {
    return this.withStatus(await this.records.find(id));
  }

  /** Kill and delete a sandbox (its snapshots stay: they are images). */
  async remove(id: string): Promise<void> {
    const sb = await this.records.find(id).catch((e) => {
      if (hasCode(e, 'not_found') && /^[0-9a-z]{32}$/.test(id)) return { id };
      throw e;
    });
    await this.launched?.stop(sb.id);
    await this.containers.remove(sb.id, { force: true }).catch((e) => {
      if (!hasCode(e, 'not_found')) throw e;
    });
    await this.records.remove(sb.id);
  }

  /** Remove every expired sandbox now; returns how many. Runs on the reaper timer too. */
  async reap(): Promise<number> {
    return (this.reaping ??= this.reapOnce().finally(() => (this.reaping = undefined)));
  }

  private async reapOnce(): Promise<number> {
    if (!this.swept) {
      this.swept = true;
      await SandboxPool.sweep(this.containers, (id) => this.records.load(id).then(() => true, () => false));
    }
    let n = 0;
    for (const sb of await this.records.list()) {
      if (Date.parse(sb.expiresAt) > Date.now()) continue;
      try {
        await this.remove(sb.id);
        n++;
        this.log?.info({ sandbox: sb.id }, 'sandbox expired and was removed');
      } catch (e) {
        this.log?.warn({ err: e, sandbox: sb.id }, 'removing an expired sandbox failed; will retry');
      }
    }
    return n;
  }

  /**
   * Stop the reaper. Without a launcher sandboxes keep running (a later manager on the same store
   * picks them up); with one they are killed and recorded exited (their records stay until their
   * TTL, so they can still be snapshotted), since they cannot outlive the launcher anyway.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.reaping?.catch(() => undefined);
    await this.pool?.close();
    await this.launched?.stopAll();
  }

  /** Commit; a launcher-booted container is frozen through the launcher while its upper is copied. */
  private async commit(id: string, o: { ref: string; message: string; author: string }): Promise<{ id: string }> {
    const launched = this.launched;
    if (!launched?.has(id)) return this.containers.commit(id, o);
    const run = (async () => {
      await launched.pause(id);
      try {
        return await this.containers.commit(id, { ...o, pause: false });
      } finally {
        await launched.resume(id).catch(() => undefined);
      }
    })();
    this.committing.set(id, run);
    try {
      return await run;
    } finally {
      if (this.committing.get(id) === run) this.committing.delete(id);
    }
  }

  private async withStatus(sb: Sandbox): Promise<Sandbox> {
    const rec = await this.containers.get(sb.id).catch(() => undefined);
    return { ...sb, status: rec?.state.status === 'running' ? 'running' : 'exited' };
  }

  private async running(id: string): Promise<{ sb: Sandbox; rec: ContainerRecord }> {
    const sb = await this.records.find(id);
    const rec = this.launched?.record(sb.id) ?? await this.containers.get(sb.id).catch((e) => {
      if (!hasCode(e, 'not_found')) throw e;
      throw new JiffyError('not_found', `sandbox ${id}'s container is gone: remove the sandbox (jiffy sandbox rm ${id})`, { cause: e });
    });
    if (rec.state.status !== 'running') {
      throw new JiffyError('failed_precondition', `sandbox ${id} is not running (its init ${rec.state.status}): snapshot or remove it`);
    }
    return { sb, rec };
  }

  private async rootfs(id: string): Promise<string> {
    return (await this.containers.snapshots.get(id)).merged;
  }
}
