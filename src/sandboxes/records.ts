/**
 * Sandbox records: one JSON file per sandbox under `<root>/sandboxes/`, written temp-then-rename
 * (a crash never leaves half a record) and updated under a file lock (several processes — the
 * gateway, a CLI call — may manage the same store).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { withFileLock } from '../content/lock.js';
import { JiffyError } from '../errors.js';
import { readJson, writeJson } from '../snapshots/snapshotter.js';
import type { Sandbox } from './types.js';

const ID = /^[0-9a-z]{1,64}$/;
const FULL_ID_LENGTH = 32;

export class SandboxRecords {
  readonly dir: string;

  constructor(root: string) {
    this.dir = path.join(root, 'sandboxes');
  }

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  /** Write (create or replace) a record. */
  async save(sb: Sandbox): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    await writeJson(this.file(sb.id), sb);
  }

  /** The record of exactly `id`. */
  async load(id: string): Promise<Sandbox> {
    return readJson<Sandbox>(this.file(id)).catch((e) => {
      throw new JiffyError('not_found', `no sandbox ${id}: list them with jiffy sandbox ls (it may have expired)`, { cause: e });
    });
  }

  /** The record whose id is `idOrPrefix` or starts with it (unique prefix). */
  async find(idOrPrefix: string): Promise<Sandbox> {
    if (!ID.test(idOrPrefix)) {
      throw new JiffyError('invalid_argument', `invalid sandbox id ${JSON.stringify(idOrPrefix)}: ids are lowercase letters and digits`);
    }
    // A full id (what the API hands out) is one read, not a directory listing.
    if (idOrPrefix.length === FULL_ID_LENGTH) {
      const sb = await this.load(idOrPrefix).catch(() => undefined);
      if (sb) return sb;
    }
    const ids = await this.ids();
    if (ids.includes(idOrPrefix)) return this.load(idOrPrefix);
    const hits = ids.filter((i) => i.startsWith(idOrPrefix));
    if (hits.length > 1) throw new JiffyError('invalid_argument', `sandbox id prefix ${idOrPrefix} is ambiguous (${hits.length} sandboxes): give more characters`);
    if (hits.length === 0) throw new JiffyError('not_found', `no sandbox ${idOrPrefix}: list them with jiffy sandbox ls (it may have expired)`);
    return this.load(hits[0]);
  }

  /** Apply `fn` to a record under its lock and save it. */
  async update(id: string, fn: (sb: Sandbox) => void): Promise<Sandbox> {
    return withFileLock(`${this.file(id)}.lock`, async () => {
      const sb = await this.load(id);
      fn(sb);
      await writeJson(this.file(id), sb);
      return sb;
    });
  }

  /** Every sandbox id on disk. */
  async ids(): Promise<string[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
  }

  /** Every record (unreadable ones skipped). */
  async list(): Promise<Sandbox[]> {
    const out = await Promise.all((await this.ids()).map((id) => this.load(id).catch(() => undefined)));
    return out.filter((s): s is Sandbox => !!s);
  }

  /** Delete a record (missing is fine). */
  async remove(id: string): Promise<void> {
    await fs.rm(this.file(id), { force: true });
    await fs.rm(`${this.file(id)}.lock`, { force: true, recursive: true });
  }
}
