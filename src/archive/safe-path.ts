import fs from 'node:fs/promises';
import path from 'node:path';
import { JiffyError } from '../errors.js';

/** The error for a layer entry refused as hostile or corrupt; names the entry. */
export function hostile(entry: string, why: string): JiffyError {
  return new JiffyError(
    'invalid_argument',
    `layer entry "${entry}" refused: ${why}; the layer is corrupt or hostile and was not unpacked (nothing outside the destination was written)`,
    { details: { entry } },
  );
}

/**
 * Splits an archive path into components, refusing absolute paths, `..` and NUL bytes (the
 * classic zip-slip / tar-slip escapes). `./` and empty components are dropped; [] is the root.
 */
export function splitEntryPath(name: string, label = name): string[] {
  if (name.includes('\0')) throw hostile(label, 'path contains a NUL byte');
  if (name.startsWith('/')) throw hostile(label, 'absolute path');
  const comps = name.split('/').filter((c) => c !== '' && c !== '.');
  if (comps.includes('..')) throw hostile(label, 'path contains ".." (would escape the layer root)');
  return comps;
}

/**
 * Walks the parents of `comps` below `root` with lstat — never following a symlink — creating
 * missing ones. A parent that is a symlink is refused: writing through it is how `a -> /etc`
 * followed by `a/passwd` escapes (node-tar CVE-2021-32803, the classic symlink escape). Known-good dirs are cached;
 * call `forget()` whenever something is removed or replaced.
 */
export class ParentWalker {
  private known = new Set<string>();
  constructor(readonly root: string) {}

  async ensure(comps: string[], entry: string, create = true): Promise<string> {
    let cur = this.root;
    for (let i = 0; i < comps.length - 1; i++) {
      cur = path.join(cur, comps[i]);
      if (this.known.has(cur)) continue;
      const st = await fs.lstat(cur).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return null;
        throw e;
      });
      if (!st) {
        if (!create) throw hostile(entry, `parent "${comps.slice(0, i + 1).join('/')}" does not exist`);
        await fs.mkdir(cur, { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw hostile(entry, `parent "${comps.slice(0, i + 1).join('/')}" is a symlink; refusing to write through it`);
      } else if (!st.isDirectory()) {
        throw hostile(entry, `parent "${comps.slice(0, i + 1).join('/')}" is not a directory`);
      }
      this.known.add(cur);
    }
    return path.join(this.root, ...comps);
  }

  /** True when every component of `comps` below root is a real directory (no symlinks). */
  async isRealDir(comps: string[]): Promise<boolean> {
    let cur = this.root;
    for (const c of comps) {
      cur = path.join(cur, c);
      const st = await fs.lstat(cur).catch(() => null);
      if (!st || !st.isDirectory()) return false;
    }
    return true;
  }

  forget(): void {
    this.known.clear();
  }
}
