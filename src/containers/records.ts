/**
 * Container records on disk: `containers/<id>/state.json` (the ContainerRecord, written
 * temp-then-rename under a per-container lock so the monitor and the CLI never lose each other's
 * updates) and `containers/.names/<name>` (created O_EXCL: names are unique across processes).
 */
import { constants as C } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { withFileLock } from '../content/lock.js';
import { JiffyError } from '../errors.js';
import { storePaths } from '../paths.js';
import { readJson, writeJson } from '../snapshots/snapshotter.js';
import type { ContainerRecord } from './types.js';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export class ContainerRecords {
  readonly dir: string;
  private readonly namesDir: string;
  private namesReady = false;

  constructor(readonly root: string) {
    this.dir = storePaths(root).containers;
    this.namesDir = path.join(this.dir, '.names');
  }

  /** The directory of container `id`. */
  path(id: string, ...rest: string[]): string {
    return path.join(this.dir, id, ...rest);
  }

  /** The record of `id` (full id). */
  async load(id: string): Promise<ContainerRecord> {
    return readJson<ContainerRecord>(this.path(id, 'state.json')).catch((e) => {
      throw new JiffyError('not_found', `no such container: ${id}; list containers with jiffy ps -a`, { cause: e });
    });
  }

  /** Write the whole record (temp-then-rename). */
  async save(rec: ContainerRecord): Promise<void> {
    await writeJson(this.path(rec.id, 'state.json'), rec);
  }

  /** Read-modify-write under the container's lock; returns the new record. */
  async update(id: string, fn: (rec: ContainerRecord) => void | Promise<void>): Promise<ContainerRecord> {
    return withFileLock(this.path(id, '.lock'), async () => {
      const rec = await this.load(id);
      await fn(rec);
      await this.save(rec);
      return rec;
    }, 30_000);
  }

  /** Every container with a record, newest first. */
  async list(): Promise<ContainerRecord[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const recs = await Promise.all(names.filter((n) => !n.startsWith('.')).map((n) => this.load(n).catch(() => undefined)));
    return recs.filter((r): r is ContainerRecord => !!r).sort((a, b) => b.created.localeCompare(a.created));
  }

  /** Find by full id, name, or unique id prefix. */
  async find(idOrName: string): Promise<ContainerRecord> {
    const byName = await fs.readFile(path.join(this.namesDir, idOrName), 'utf8').catch(() => undefined);
    if (byName) return this.load(byName.trim());
    if (/^[0-9a-z]+$/.test(idOrName)) {
      const ids = (await fs.readdir(this.dir).catch(() => [] as string[])).filter((n) => n.startsWith(idOrName));
      const recs = (await Promise.all(ids.map((i) => this.load(i).catch(() => undefined)))).filter(Boolean) as ContainerRecord[];
      if (recs.length === 1) return recs[0];
      if (recs.length > 1) throw new JiffyError('invalid_argument', `${idOrName} matches ${recs.length} containers: give more characters of the id`);
    }
    throw new JiffyError('not_found', `no such container: ${idOrName}; list containers with jiffy ps -a`);
  }

  /** Claim `name` for `id`; already_exists when another container has it. */
  async reserveName(name: string, id: string): Promise<void> {
    if (!NAME_RE.test(name)) throw new JiffyError('invalid_argument', `invalid container name ${JSON.stringify(name)}: use letters, digits, _ . - (starting with a letter or digit)`);
    const file = path.join(this.namesDir, name);
    // The names dir is made once per process (this is on every create's path), again if it vanished.
    const open = () => fs.open(file, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o644);
    try {
      if (!this.namesReady) await fs.mkdir(this.namesDir, { recursive: true });
      this.namesReady = true;
      const fh = await open().catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        await fs.mkdir(this.namesDir, { recursive: true });
        return open();
      });
      await fh.writeFile(id);
      await fh.close();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = await fs.readFile(path.join(this.namesDir, name), 'utf8').catch(() => '?');
      throw new JiffyError('already_exists', `the container name "${name}" is already in use by container ${owner.slice(0, 12)}: remove it (jiffy rm ${name}) or pick another name`);
    }
  }

  /** Release `name` if it still belongs to `id`. */
  async releaseName(name: string, id: string): Promise<void> {
    const f = path.join(this.namesDir, name);
    const owner = await fs.readFile(f, 'utf8').catch(() => undefined);
    if (owner?.trim() === id) await fs.rm(f, { force: true });
  }
}

const ADJ = ['brave', 'calm', 'eager', 'fancy', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'merry', 'nifty', 'quick', 'sharp', 'swift', 'tidy', 'vivid', 'witty', 'zen'];
const NOUN = ['ant', 'bee', 'cat', 'dove', 'elk', 'fox', 'gnu', 'hawk', 'ibis', 'jay', 'kiwi', 'lynx', 'mole', 'newt', 'owl', 'puma', 'seal', 'wren', 'yak'];

/** A docker-style `adjective_noun` name, with the id's first characters to keep it unique. */
export function generateName(id: string): string {
  const h = parseInt(id.slice(0, 6), 36);
  return `${ADJ[h % ADJ.length]}_${NOUN[Math.floor(h / ADJ.length) % NOUN.length]}_${id.slice(0, 4)}`;
}
