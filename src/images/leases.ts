import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { pidAlive } from '../content/lock.js';
import { invalid } from '../errors.js';

/**
 * Leases (containerd's idea): a lease names blobs and layers that garbage collection must keep
 * even though no image name refers to them — a container running on an image that was `rmi -f`'d,
 * or a pull whose blobs are not yet part of an image. One JSON file per lease under `leases/`;
 * a lease with a `pid` dies with that process, one without lasts until released.
 */
export interface LeaseRecord {
  id: string;
  pid?: number;
  created: string;
  manifests: string[];
  blobs: string[];
  layers: string[];
}

/** A held lease; `release()` lets gc reclaim what it kept. */
export interface Lease {
  readonly id: string;
  release(): Promise<void>;
}

/** Lease records under one directory (`<root>/leases`). */
export class LeaseFiles {
  constructor(readonly dir: string) {}

  private file(id: string): string {
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(id) || id.startsWith('.')) throw invalid(`invalid lease id "${id}": use letters, digits, . _ -`);
    return path.join(this.dir, `${id}.json`);
  }

  /** Writes (or replaces) a lease. `persistent` leases have no owner pid. */
  async write(rec: Omit<LeaseRecord, 'id' | 'created' | 'pid'>, opts: { id?: string; persistent?: boolean } = {}): Promise<Lease> {
    const id = opts.id ?? `tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    const full: LeaseRecord = { id, created: new Date().toISOString(), ...(opts.persistent || opts.id ? {} : { pid: process.pid }), ...rec };
    await fs.mkdir(this.dir, { recursive: true });
    const tmp = `${this.file(id)}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(full) + '\n');
    await fs.rename(tmp, this.file(id));
    return { id, release: () => this.release(id) };
  }

  /** Deletes a lease; releasing an unknown id is not an error. */
  async release(id: string): Promise<void> {
    await fs.rm(this.file(id), { force: true });
  }

  /** Live leases; leases of dead processes are removed on the way. */
  async list(): Promise<LeaseRecord[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const out: LeaseRecord[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const p = path.join(this.dir, n);
      const rec = await fs.readFile(p, 'utf8').then((t) => JSON.parse(t) as LeaseRecord).catch(() => null);
      if (!rec) continue;
      if (rec.pid && !pidAlive(rec.pid)) {
        await fs.rm(p, { force: true });
        continue;
      }
      out.push(rec);
    }
    return out;
  }
}
