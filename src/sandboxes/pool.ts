/**
 * Ready sandboxes: per sandbox configuration (image id + limits + network), a few containers
 * already booted with the idle init, so create() only has to write a record. This is the lever
 * that takes create → first output from the cost of a container boot (tens of ms) to the cost
 * of one exec. A key gets a slot the first time it is asked for (or by warm()); an LRU bounds
 * how many keys keep ready containers, and an evicted key's spares are removed.
 *
 * Spares are ordinary containers named `sbpool-<owner pid>-…` without a sandbox record; a later
 * manager removes spares whose owner died (sweep), so a crash leaks nothing for long.
 */
import { LRUCache } from 'lru-cache';
import type { ContainerManager } from '../containers/manager.js';
import type { CreateOptions } from '../containers/types.js';
import type { Logger } from '../log.js';
import { pidAlive } from '../snapshots/warm-pool.js';

export interface SandboxPoolOptions {
  /** Ready containers kept per configuration (0 = no pool). */
  size: number;
  /** How many configurations keep ready containers (LRU beyond). Default 4. */
  maxKeys?: number;
}

interface Slot {
  opts: CreateOptions;
  ready: string[];
  filling?: Promise<void>;
}

const POOL_NAME = /^sbpool-(\d+)-/;

/** The pool key of a container configuration. */
export function poolKey(o: CreateOptions): string {
  return JSON.stringify([o.image, o.memoryBytes, o.cpus ?? null, o.network, o.pidsLimit, o.capabilities ?? null]);
}

export class SandboxPool {
  private readonly slots: LRUCache<string, Slot>;
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  private seq = 0;

  constructor(
    private readonly containers: ContainerManager,
    private readonly boot: (o: CreateOptions) => Promise<string>,
    private readonly opts: SandboxPoolOptions & { log?: Logger },
  ) {
    this.slots = new LRUCache<string, Slot>({ max: opts.maxKeys ?? 4, dispose: (slot) => this.track(this.drain(slot)) });
  }

  /** A ready container id for `o`, or undefined; starts a refill either way. */
  take(o: CreateOptions): string | undefined {
    if (this.closed || this.opts.size <= 0) return undefined;
    const key = poolKey(o);
    let slot = this.slots.get(key);
    if (!slot) this.slots.set(key, (slot = { opts: o, ready: [] }));
    const id = slot.ready.shift();
    this.refill(slot);
    return id;
  }

  /** Fill the slot for `o` and wait until it is full. */
  async warm(o: CreateOptions): Promise<void> {
    const id = this.take(o);
    const slot = this.slots.get(poolKey(o))!;
    if (id) slot.ready.unshift(id);
    while (slot.filling) await slot.filling;
  }

  /** Remove every ready container; waits for refills in flight. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.slots.values()];
    this.slots.clear();
    await Promise.all(slots.map((s) => s.filling));
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /** Remove spares of dead owners (containers named sbpool-<pid>-… with no sandbox record). */
  static async sweep(containers: ContainerManager, isSandbox: (id: string) => Promise<boolean>): Promise<number> {
    let n = 0;
    for (const rec of await containers.records.list()) {
      const m = POOL_NAME.exec(rec.name);
      if (!m || pidAlive(Number(m[1])) || (await isSandbox(rec.id))) continue;
      await containers.remove(rec.id, { force: true }).catch(() => undefined);
      n++;
    }
    return n;
  }

  private refill(slot: Slot): void {
    if (slot.filling || this.closed || slot.ready.length >= this.opts.size) return;
    slot.filling = (async () => {
      while (!this.closed && slot.ready.length < this.opts.size && this.slots.peek(poolKey(slot.opts)) === slot) {
        const id = await this.boot({ ...slot.opts, name: `sbpool-${process.pid}-${Date.now().toString(36)}${(this.seq++).toString(36)}` });
        if (this.closed || this.slots.peek(poolKey(slot.opts)) !== slot) {
          await this.containers.remove(id, { force: true });
          break;
        }
        slot.ready.push(id);
      }
    })()
      .catch((e) => this.opts.log?.warn({ err: e }, 'sandbox pool refill failed'))
      .finally(() => (slot.filling = undefined));
  }

  private async drain(slot: Slot): Promise<void> {
    await slot.filling;
    for (const id of slot.ready.splice(0)) await this.containers.remove(id, { force: true }).catch(() => undefined);
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((e) => this.opts.log?.warn({ err: e }, 'sandbox pool cleanup failed')).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }
}
