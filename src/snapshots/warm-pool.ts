/**
 * Warm rootfs mounts: per image, a few snapshots prepared ahead (fresh upper/work, overlay already
 * mounted) so the next container of that image skips the mount. An LRU over image ids bounds how
 * many images stay warm; an evicted image's spare mounts are unmounted and deleted (dispose).
 * Taking a snapshot refills that image's slot in the background. Each spare carries a `warm` marker
 * with the owning pid so a later process can sweep spares whose owner died (no mount leaks).
 */
import { LRUCache } from 'lru-cache';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { OverlaySnapshotter, type Snapshot, type SnapshotParent } from './snapshotter.js';

export interface WarmPoolOptions {
  /** How many images keep spare mounts (LRU beyond that). Default 8. */
  maxImages?: number;
  /** Spare mounts kept ready per image. Default 1. */
  perImage?: number;
  log?: Logger;
}

interface Slot {
  parent: SnapshotParent;
  ready: Snapshot[];
  filling?: Promise<void>;
}

export class WarmPool {
  private readonly cache: LRUCache<string, Slot>;
  private readonly perImage: number;
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;

  constructor(private readonly snapshots: OverlaySnapshotter, private readonly opts: WarmPoolOptions = {}) {
    this.perImage = opts.perImage ?? 1;
    this.cache = new LRUCache<string, Slot>({
      max: opts.maxImages ?? 8,
      dispose: (slot) => this.track(this.drain(slot)),
    });
  }

  /** A mounted snapshot for `parent` from the pool, or undefined when none is ready; refills. */
  take(parent: SnapshotParent): Snapshot | undefined {
    if (this.closed) return undefined;
    const slot = this.slot(parent);
    const snap = slot.ready.shift();
    if (snap) this.track(fs.rm(path.join(snap.dir, 'warm'), { force: true }));
    this.refill(slot);
    return snap;
  }

  /** Fill the slot of `parent` now and wait for it (e.g. a worker warming a function's image). */
  async warm(parent: SnapshotParent): Promise<void> {
    if (this.closed) return;
    // Only refill: a spare taken here would have nobody to hand it to, and its mount would leak.
    const slot = this.slot(parent);
    this.refill(slot);
    await slot.filling;
  }

  /** The slot of `parent` (marked most recently used), created empty when missing. */
  private slot(parent: SnapshotParent): Slot {
    let slot = this.cache.get(parent.id);
    if (!slot) {
      slot = { parent, ready: [] };
      this.cache.set(parent.id, slot);
    }
    return slot;
  }

  /** Number of spare mounts ready for an image. */
  ready(imageId: string): number {
    return this.cache.peek(imageId)?.ready.length ?? 0;
  }

  /** Unmount and delete every spare; waits for refills in flight. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.cache.values()];
    this.cache.clear(); // dispose drains each slot
    await Promise.all(slots.map((s) => s.filling));
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /**
   * Remove spares left by processes that died (their `warm` marker names a dead pid), and
   * snapshots a crash left without a container record (older than a minute, so a create in
   * progress elsewhere is never touched).
   */
  static async sweep(snapshots: OverlaySnapshotter): Promise<number> {
    const names = await fs.readdir(snapshots.containersDir).catch(() => [] as string[]);
    let swept = 0;
    for (const name of names.filter((n) => !n.startsWith('.'))) {
      const dir = snapshots.dir(name);
      const owner = await fs.readFile(path.join(dir, 'warm'), 'utf8').catch(() => undefined);
      if (owner !== undefined ? pidAlive(Number(owner)) : !(await orphaned(dir))) continue;
      await snapshots.remove(name);
      swept++;
    }
    return swept;
  }

  private refill(slot: Slot): void {
    if (slot.filling || this.closed || slot.ready.length >= this.perImage) return;
    slot.filling = (async () => {
      while (!this.closed && slot.ready.length < this.perImage && this.cache.peek(slot.parent.id) === slot) {
        const snap = await this.snapshots.prepare(slot.parent);
        await fs.writeFile(path.join(snap.dir, 'warm'), String(process.pid));
        if (this.closed || this.cache.peek(slot.parent.id) !== slot) {
          await this.snapshots.remove(snap.key);
          break;
        }
        slot.ready.push(snap);
      }
    })()
      .catch((e) => this.opts.log?.warn({ err: e, image: slot.parent.id }, 'warm mount refill failed'))
      .finally(() => {
        slot.filling = undefined;
      });
  }

  private async drain(slot: Slot): Promise<void> {
    await slot.filling;
    const spares = slot.ready.splice(0);
    for (const s of spares) await this.snapshots.remove(s.key);
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((e) => this.opts.log?.warn({ err: e }, 'warm mount cleanup failed')).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }
}

async function orphaned(dir: string): Promise<boolean> {
  const hasState = await fs.access(path.join(dir, 'state.json')).then(() => true, () => false);
  if (hasState) return false;
  const st = await fs.stat(path.join(dir, 'snapshot.json')).catch(() => undefined);
  return !!st && Date.now() - st.mtimeMs > 60_000;
}

/** True when a process with this pid exists. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
