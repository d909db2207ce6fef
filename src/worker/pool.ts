import type { Logger } from '../log.js';
import type { FunctionVersion } from '../functions/spec.js';
import { Instance, InstanceError } from './instance.js';
import type { Spawner } from './spawner.js';

/** An instance lent to one invocation, and whether getting it cost a cold start. */
export interface Lease {
  inst: Instance;
  cold: boolean;
  bootMs: number;
  initMs: number;
}

let seq = 0;

/**
 * The warm instances of one function version. Keeps `minWarm` ready, starts more on demand up to
 * `maxInstances`, lends each to at most `concurrency` invocations at once, queues callers past that
 * (in order), and reaps instances idle longer than `idleTimeoutS` (scale to zero).
 */
export class Pool {
  private readonly instances = new Set<Instance>();
  private starting = 0;
  /** Boots in flight, so close() can wait for them (they stop themselves once closed is set). */
  private readonly boots = new Set<Promise<unknown>>();
  private readonly waiters: Array<(l: Lease | Error) => void> = [];
  private readonly reaper: NodeJS.Timeout;
  private closed = false;

  constructor(readonly fn: FunctionVersion, private readonly spawner: Spawner, private readonly idPrefix: string, private readonly log: Logger) {
    const every = Math.min(1000, Math.max(50, (fn.settings.idleTimeoutS * 1000) / 4));
    this.reaper = setInterval(() => this.reap(), every);
    this.reaper.unref();
  }

  /** Instances alive or starting (what counts against maxInstances). */
  get size(): number {
    let alive = 0;
    for (const i of this.instances) if (!i.dead) alive++;
    return alive + this.starting;
  }

  /** A free slot on a warm instance, a fresh instance, or a place in line. */
  acquire(): Promise<Lease> {
    const warm = this.pickWarm();
    if (warm) return Promise.resolve(this.lend(warm, false));
    if (this.size < this.fn.settings.maxInstances) return this.startAndLend();
    return new Promise<Lease>((resolve, reject) => this.waiters.push((l) => (l instanceof Error ? reject(l) : resolve(l))));
  }

  /** Returns a lease; dead instances are dropped and a waiter gets a fresh one. */
  release(l: Lease): void {
    if (l.inst.dead) this.instances.delete(l.inst);
    this.serveWaiters();
  }

  /** Starts instances until `minWarm` are alive. */
  async ensureMinWarm(): Promise<void> {
    const need = this.fn.settings.minWarm - this.size;
    await Promise.all(Array.from({ length: Math.max(0, need) }, () => this.startOne().catch((e) => this.log.warn({ err: e, fn: this.fn.name }, 'pre-warming an instance failed'))));
  }

  private pickWarm(): Instance | undefined {
    let best: Instance | undefined;
    for (const i of this.instances) {
      if (i.dead || i.inflight >= this.fn.settings.concurrency) continue;
      if (!best || i.inflight < best.inflight) best = i;
    }
    return best;
  }

  private lend(inst: Instance, cold: boolean): Lease {
    inst.lastUsed = Date.now();
    return cold ? { inst, cold, bootMs: inst.bootMs, initMs: inst.initMs } : { inst, cold, bootMs: 0, initMs: 0 };
  }

  private async startAndLend(): Promise<Lease> {
    const inst = await this.startOne();
    return this.lend(inst, true);
  }

  private startOne(): Promise<Instance> {
    const p = this.boot();
    this.boots.add(p);
    void p.then(() => this.boots.delete(p), () => this.boots.delete(p));
    return p;
  }

  private async boot(): Promise<Instance> {
    if (this.closed) throw new InstanceError('unavailable', 'worker is shutting down');
    this.starting++;
    const id = `${this.idPrefix}-${(++seq).toString(36)}`;
    try {
      const inst = await Instance.start(this.spawner, this.fn, id, Math.max(10_000, this.fn.settings.timeoutS * 1000));
      if (this.closed) {
        await inst.kill();
        throw new InstanceError('unavailable', 'worker is shutting down');
      }
      this.instances.add(inst);
      return inst;
    } finally {
      this.starting--;
    }
  }

  private serveWaiters(): void {
    while (this.waiters.length) {
      const warm = this.pickWarm();
      if (warm) {
        this.waiters.shift()!(this.lend(warm, false));
        continue;
      }
      if (this.size >= this.fn.settings.maxInstances) return;
      const w = this.waiters.shift()!;
      this.startAndLend().then(w, (e: Error) => w(e));
    }
  }

  private reap(): void {
    const idleMs = this.fn.settings.idleTimeoutS * 1000;
    const now = Date.now();
    let alive = 0;
    for (const i of this.instances) {
      if (i.dead) { this.instances.delete(i); continue; }
      alive++;
    }
    for (const i of this.instances) {
      if (alive <= this.fn.settings.minWarm) break;
      if (i.inflight === 0 && now - i.lastUsed >= idleMs) {
        this.instances.delete(i);
        alive--;
        void i.stop().catch(() => {});
      }
    }
    if (alive < this.fn.settings.minWarm && this.starting === 0 && !this.closed) void this.ensureMinWarm();
  }

  /** Stops every instance (in-flight invocations fail as crashed). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reaper);
    for (const w of this.waiters.splice(0)) w(new InstanceError('unavailable', 'worker is shutting down'));
    await Promise.allSettled([...this.boots]);
    await Promise.all([...this.instances].map((i) => i.stop(200).catch(() => {})));
    this.instances.clear();
  }
}
