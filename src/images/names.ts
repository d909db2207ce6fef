import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { JiffyError } from '../errors.js';
import { withFileLock } from '../content/lock.js';
import { fsyncDir } from '../content/store.js';
import { formatName, formatReference, parseReference } from './reference.js';

/**
 * `images.json`: which manifests the store holds as images and which names point at them.
 * Read without a lock (it is only ever replaced whole, by rename); changed only under the
 * `images.json.lock` file lock, read-modify-write, temp-then-rename.
 */
export interface NamesDb {
  version: 1;
  /** Normalized reference (`repo:tag` or `repo@sha256:…`) → manifest digest. */
  refs: Record<string, string>;
  /** Manifest digest → when it was added. Untagged (dangling) images stay here until removed. */
  manifests: Record<string, { added: string }>;
}

/** The names file with its lock; see NamesDb. */
export class NamesFile {
  constructor(readonly file: string) {}

  /** The current db (empty when the file does not exist yet). */
  async read(): Promise<NamesDb> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, refs: {}, manifests: {} };
      throw e;
    }
    try {
      const db = JSON.parse(text) as NamesDb;
      return { version: 1, refs: db.refs ?? {}, manifests: db.manifests ?? {} };
    } catch (e) {
      throw new JiffyError('data_loss', `${this.file} is not valid JSON; restore it from a backup or delete it (images become unnamed)`, { cause: e });
    }
  }

  /** Runs `fn` on the current db under the lock and writes the result back atomically. */
  async update<T>(fn: (db: NamesDb) => Promise<T> | T): Promise<T> {
    return withFileLock(`${this.file}.lock`, async () => {
      const db = await this.read();
      const result = await fn(db);
      const tmp = `${this.file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
      const fh = await fs.open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(JSON.stringify(db, null, 2) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, this.file);
      await fsyncDir(path.dirname(this.file));
      return result;
    });
  }

  /** Runs `fn` holding the lock without writing (for gc that must not race with new names). */
  async locked<T>(fn: (db: NamesDb) => Promise<T>): Promise<T> {
    return withFileLock(`${this.file}.lock`, async () => fn(await this.read()));
  }
}

/**
 * Normalized local name for a reference (`busybox` → `busybox:latest`). Docker Hub names are
 * stored in Docker's familiar form (`docker.io/library/busybox` → `busybox`), as `docker images`
 * shows them, so an image loaded from a docker-archive is found by the name people type.
 */
export function normalizeRef(ref: string): string {
  const r = parseReference(ref);
  if (r.registry === 'docker.io' || r.registry === 'index.docker.io') {
    delete r.registry;
    if (r.repository.startsWith('library/') && r.repository.split('/').length === 2) r.repository = r.repository.slice(8);
  }
  return formatReference(r);
}

/** Names pointing at a manifest, sorted. */
export function refsOf(db: NamesDb, manifestDigest: string): string[] {
  return Object.entries(db.refs).filter(([, v]) => v === manifestDigest).map(([k]) => k).sort();
}

/** For `name@sha256:…`: the manifest digest, when that manifest is known under the same name. */
export function digestOfName(ref: string, db: NamesDb): string | null {
  let r;
  try {
    r = parseReference(ref);
  } catch {
    return null;
  }
  if (!r.digest || !db.manifests[r.digest]) return null;
  const name = formatName(r);
  return refsOf(db, r.digest).some((k) => formatName(parseReference(k)) === name) ? r.digest : null;
}

/** The names-db key `ref` names, when it is a name present in the db. */
export function nameKey(ref: string, db: NamesDb): string | null {
  let key: string;
  try {
    key = normalizeRef(ref);
  } catch {
    return null;
  }
  if (db.refs[key]) return key;
  // name:tag@digest or name@digest: accept when the digest is a known manifest.
  const r = parseReference(ref);
  if (r.digest && db.manifests[r.digest]) {
    const byDigest = formatReference({ ...r, tag: undefined });
    if (db.refs[byDigest]) return byDigest;
  }
  return null;
}
