import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { JiffyError } from '../errors.js';
import { withFileLock } from '../content/lock.js';
import { fsyncDir } from '../content/store.js';

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

export class NamesFile {
  constructor(readonly file: string) {}

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
