/**
 * Overlay snapshots for container root filesystems (containerd's snapshotter is the model).
 *
 * Lifecycle of one snapshot, keyed by the container id:
 *   1. prepare(parent)  — make `containers/<key>/{upper,work,merged}` and mount
 *                         overlay(lower = parent's layers top first, upper, work) at merged.
 *                         A warm pool may hand out a snapshot mounted earlier for the same image;
 *                         the snapshot key (and so the container id) then comes from the pool.
 *      view(parent)     — a read-only rootfs: one overlay without upper per image, shared by every
 *                         read-only container and refcounted (refs are files, so they survive restarts).
 *   2. mounts(key)      — the mount spec (lowerdirs are short paths relative to the store root);
 *      mount(key)       — re-mount a stopped container's rootfs (cp, commit, restart);
 *      unmount(key)     — take it down when the container stops; upper/work stay.
 *   3. diff(key)        — the changes in upper as A/C/D (docker diff), and as an OCI layer tar
 *                         (see ./diff.ts and ./layer-tar.ts); commit turns that into an image layer.
 *   4. remove(key)      — unmount and delete upper/work/merged; drop a view ref.
 *
 * Everything a snapshot needs to be mounted again is in `containers/<key>/snapshot.json`, so any
 * process (CLI, monitor, worker) can pick it up.
 */
import { customAlphabet } from 'nanoid';
import fs from 'node:fs/promises';
import path from 'node:path';
import { JiffyError } from '../errors.js';
import { storePaths } from '../paths.js';
import { isMountPoint, mountOverlay, mountsUnder, umount, type OverlayMountSpec } from './mount.js';

/** Container and snapshot ids: lowercase alnum, shown as their first 12 characters. */
export const newId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 32);

/** What a snapshot is made from: an image id and its layers' lower paths, base layer first. */
export interface SnapshotParent {
  id: string;
  /** Paths relative to the store root (e.g. `l/ABC123`), base layer first as in the manifest. */
  lowerPaths: string[];
}

/** A prepared (or viewed) rootfs. Paths are absolute. */
export interface Snapshot {
  key: string;
  parentId: string;
  readonly: boolean;
  dir: string;
  upper?: string;
  work?: string;
  merged: string;
  /** Lower paths relative to the store root, top layer first (overlay order). */
  lower: string[];
}

interface SnapshotMeta {
  parentId: string;
  readonly: boolean;
  lower: string[];
  view?: string;
}

export class OverlaySnapshotter {
  readonly root: string;
  readonly containersDir: string;
  readonly viewsDir: string;

  constructor(root: string) {
    this.root = root;
    this.containersDir = storePaths(root).containers;
    this.viewsDir = path.join(root, 'snapshots', 'views');
  }

  /** The directory of snapshot `key` (= `containers/<key>`). */
  dir(key: string): string {
    return path.join(this.containersDir, key);
  }

  /** Create upper/work/merged for a new key (or the given one) and mount the overlay. */
  async prepare(parent: SnapshotParent, opts: { key?: string } = {}): Promise<Snapshot> {
    const key = opts.key ?? newId();
    const dir = this.dir(key);
    await fs.mkdir(path.join(dir, 'upper'), { recursive: true });
    await fs.mkdir(path.join(dir, 'work'), { recursive: true });
    await fs.mkdir(path.join(dir, 'merged'), { recursive: true });
    const meta: SnapshotMeta = { parentId: parent.id, readonly: false, lower: [...parent.lowerPaths].reverse() };
    await writeJson(path.join(dir, 'snapshot.json'), meta);
    const snap = this.toSnapshot(key, meta);
    await mountOverlay(this.mounts(snap));
    return snap;
  }

  /** A read-only rootfs for `key`, sharing one overlay (no upper) per image, refcounted. */
  async view(parent: SnapshotParent, opts: { key?: string } = {}): Promise<Snapshot> {
    const key = opts.key ?? newId();
    const vdir = path.join(this.viewsDir, parent.id.replace(/^sha256:/, '').slice(0, 24));
    const merged = path.join(vdir, 'merged');
    await fs.mkdir(path.join(vdir, 'refs'), { recursive: true });
    await fs.mkdir(merged, { recursive: true });
    await fs.writeFile(path.join(vdir, 'refs', key), '');
    const lower = [...parent.lowerPaths].reverse();
    if (!(await isMountPoint(merged))) {
      await mountOverlay({ lower, target: merged, readonly: true, cwd: this.root }).catch(async (e) => {
        // Another process may have mounted it between our check and our mount.
        if (!(await isMountPoint(merged))) throw e;
      });
    }
    await fs.mkdir(this.dir(key), { recursive: true });
    const meta: SnapshotMeta = { parentId: parent.id, readonly: true, lower, view: vdir };
    await writeJson(path.join(this.dir(key), 'snapshot.json'), meta);
    return this.toSnapshot(key, meta);
  }

  /** The snapshot recorded for `key`. */
  async get(key: string): Promise<Snapshot> {
    const meta = await readJson<SnapshotMeta>(path.join(this.dir(key), 'snapshot.json')).catch((e) => {
      throw new JiffyError('not_found', `no snapshot for ${key}: the container's directory is incomplete; remove it with jiffy rm -f ${key.slice(0, 12)}`, { cause: e });
    });
    return this.toSnapshot(key, meta);
  }

  /** The overlay mount spec for a snapshot (relative lowerdirs, cwd = store root). */
  mounts(snap: Snapshot): OverlayMountSpec {
    return snap.readonly
      ? { lower: snap.lower, target: snap.merged, readonly: true, cwd: this.root }
      : { lower: snap.lower, upper: snap.upper, work: snap.work, target: snap.merged, cwd: this.root };
  }

  /** Mount the rootfs of `key` if it is not mounted; returns the snapshot. */
  async mount(key: string): Promise<Snapshot> {
    const snap = await this.get(key);
    if (!(await isMountPoint(snap.merged))) await mountOverlay(this.mounts(snap));
    return snap;
  }

  /** Unmount the rootfs of `key` (a view stays mounted while other containers use it). */
  async unmount(key: string): Promise<void> {
    const snap = await this.get(key).catch(() => undefined);
    if (!snap || snap.readonly) return;
    await umount(snap.merged);
  }

  /** Unmount and delete everything of `key`; drops its view ref (last ref unmounts the view). */
  async remove(key: string): Promise<void> {
    const dir = this.dir(key);
    const meta = await readJson<SnapshotMeta>(path.join(dir, 'snapshot.json')).catch(() => undefined);
    for (const m of (await mountsUnder(dir)).reverse()) await umount(m);
    if (meta?.view) await this.releaseView(meta.view, key);
    await fs.rm(dir, { recursive: true, force: true });
  }

  private async releaseView(vdir: string, key: string): Promise<void> {
    await fs.rm(path.join(vdir, 'refs', key), { force: true });
    const refs = await fs.readdir(path.join(vdir, 'refs')).catch(() => []);
    if (refs.length > 0) return;
    await umount(path.join(vdir, 'merged'));
    await fs.rm(vdir, { recursive: true, force: true });
  }

  private toSnapshot(key: string, meta: SnapshotMeta): Snapshot {
    const dir = this.dir(key);
    return meta.readonly
      ? { key, parentId: meta.parentId, readonly: true, dir, merged: path.join(meta.view!, 'merged'), lower: meta.lower }
      : {
          key, parentId: meta.parentId, readonly: false, dir, lower: meta.lower,
          upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), merged: path.join(dir, 'merged'),
        };
  }
}

/** Write JSON via temp-then-rename so a crash never leaves half a file. */
export async function writeJson(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(value, null, 2));
  await fs.rename(tmp, file);
}

/** Read and parse a JSON file. */
export async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as T;
}
