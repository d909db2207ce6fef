/**
 * What changed in a container: walk its overlay upper dir and classify each entry the way
 * `docker diff` does — A (added), C (changed), D (deleted) — using the image's lower layers to tell
 * Added from Changed. Overlay keeps deletions as whiteouts (a char device 0/0) and directory
 * replacements as opaque dirs (xattr `trusted.overlay.opaque=y`); Node cannot read xattrs, so opaque
 * dirs come from `jiffy-fsutil scan` (H3's src/archive/whiteout.ts). The layer tar of an upper dir is
 * H3's `dirToLayerEntries(upper, { overlay: true })` + `writeLayerBlob` (see containers/commit.ts).
 */
import { existsSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { dirToLayerEntries, writeLayerBlob } from '../archive/tar-writer.js';
import { isOverlayWhiteout as isWhiteout, scanOverlay } from '../archive/whiteout.js';
import type { ContentStore } from '../content/store.js';

export type ChangeKind = 'A' | 'C' | 'D';

/** One change, with an absolute in-container path (`/etc/passwd`). */
export interface Change {
  kind: ChangeKind;
  path: string;
}

/** One upper-dir entry in overlay form; `rel` has no leading slash. */
export interface UpperEntry {
  rel: string;
  stat: Stats;
  whiteout: boolean;
  opaque: boolean;
}

/** Relative paths of the opaque directories in an overlay upper dir (via jiffy-fsutil scan). */
export async function opaqueDirs(upper: string): Promise<Set<string>> {
  return new Set((await scanOverlay(upper)).opaque.map((p) => p.replace(/^\.?\/+/, '')));
}

/** Every entry of an upper dir, parents before children, names sorted bytewise (deterministic). */
export async function walkUpper(upper: string): Promise<UpperEntry[]> {
  const opaque = await opaqueDirs(upper);
  const out: UpperEntry[] = [];
  const visit = async (rel: string): Promise<void> => {
    const names = (await fs.readdir(path.join(upper, rel))).sort(byteOrder);
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const stat = await fs.lstat(path.join(upper, r));
      out.push({ rel: r, stat, whiteout: isWhiteout(stat), opaque: stat.isDirectory() && opaque.has(r) });
      if (stat.isDirectory()) await visit(r);
    }
  };
  await visit('');
  return out;
}

/** Bytewise comparison of names (what tar tools and `sort` with LC_ALL=C use). */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Whether `rel` exists in the lower layers (absolute dirs, top first): the first layer that has
 * it decides; a whiteout there means it was deleted, so it does not exist.
 */
export async function existsInLowers(lowers: string[], rel: string): Promise<boolean> {
  for (const dir of lowers) {
    const st = await fs.lstat(path.join(dir, rel)).catch(() => undefined);
    if (st) return !isWhiteout(st);
  }
  return false;
}

/** Names directly under `rel` in the lower layers (merged view, whiteouts applied). */
async function lowerChildren(lowers: string[], rel: string): Promise<string[]> {
  const seen = new Map<string, boolean>();
  for (const dir of lowers) {
    const names = await fs.readdir(path.join(dir, rel)).catch(() => [] as string[]);
    for (const n of names) {
      if (seen.has(n)) continue;
      const st = await fs.lstat(path.join(dir, rel, n));
      seen.set(n, !isWhiteout(st));
    }
  }
  return [...seen].filter(([, present]) => present).map(([n]) => n).sort(byteOrder);
}

/**
 * The changes of an upper dir against its lower layers (absolute dirs, top first), sorted by path.
 * An opaque dir that replaced a lower dir reports the hidden lower children as deleted.
 */
export async function diffUpper(upper: string, lowers: string[]): Promise<Change[]> {
  const changes: Change[] = [];
  const underOpaque: string[] = [];
  for (const e of await walkUpper(upper)) {
    const p = `/${e.rel}`;
    if (e.whiteout) {
      changes.push({ kind: 'D', path: p });
      continue;
    }
    const hidden = underOpaque.some((o) => e.rel.startsWith(`${o}/`));
    const existed = !hidden && (await existsInLowers(lowers, e.rel));
    changes.push({ kind: existed ? 'C' : 'A', path: p });
    if (e.opaque && existed) {
      underOpaque.push(e.rel);
      for (const n of await lowerChildren(lowers, e.rel)) {
        if (!existsSyncQuiet(path.join(upper, e.rel, n))) changes.push({ kind: 'D', path: `${p}/${n}` });
      }
    }
  }
  return changes.sort((a, b) => byteOrder(a.path, b.path));
}

function existsSyncQuiet(p: string): boolean {
  try {
    return existsSync(p);
  } catch {
    return false;
  }
}

/** `docker diff` text: one `K /path` line per change. */
export function formatChanges(changes: Change[]): string {
  return changes.map((c) => `${c.kind} ${c.path}`).join('\n');
}

/**
 * The upper dir as an uncompressed OCI layer blob in `content` (whiteouts → `.wh.NAME`, opaque
 * dirs → `.wh..wh..opq`, sorted entries; owners and mtimes kept, as docker commit does).
 */
export async function writeDiffLayer(content: ContentStore, upper: string): Promise<{ digest: string; size: number; diffId: string; mediaType: string }> {
  const entries = dirToLayerEntries(upper, { overlay: true, preserveOwner: true, preserveMtime: true });
  return writeLayerBlob(content, entries, { gzip: false });
}
