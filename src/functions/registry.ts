import type { Redis } from 'ioredis';
import { JiffyError } from '../errors.js';
import type { Keys } from '../queue/keys.js';
import type { FunctionVersion } from './spec.js';

/**
 * Function definitions in Redis, so every gateway and worker sees the same ones. Versions are
 * immutable JSON strings; `latest` moves only after workers prepared a version, so `NAME` never
 * points at something an invocation would have to wait for.
 */
export class FunctionRegistry {
  constructor(private readonly redis: Redis, private readonly keys: Keys) {}

  /** Allocates the next version number of `name` (never reused while the function exists). */
  async nextVersion(name: string): Promise<number> {
    return this.redis.incr(this.keys.versionSeq(name));
  }

  /** Stores a version record (not yet the newest). */
  async put(v: FunctionVersion): Promise<void> {
    await this.redis.set(this.keys.version(v.name, v.version), JSON.stringify(v));
  }

  /** Makes `v` the version `NAME` resolves to and lists the function. */
  async publish(v: FunctionVersion): Promise<void> {
    await this.redis.multi().set(this.keys.latest(v.name), String(v.version)).sadd(this.keys.functions(), v.name).exec();
  }

  /** The given version, or the newest; throws not_found naming what is missing. */
  async get(name: string, version?: number): Promise<FunctionVersion> {
    const v = version ?? Number(await this.redis.get(this.keys.latest(name)));
    if (!v) throw new JiffyError('not_found', `function ${name} is not deployed; deploy it with: jiffy deploy ${name} --runtime node DIR`);
    const raw = await this.redis.get(this.keys.version(name, v));
    if (!raw) throw new JiffyError('not_found', `function ${name}@${v} does not exist; list versions with: jiffy fn info ${name}`);
    return JSON.parse(raw) as FunctionVersion;
  }

  /** All versions of one function, oldest first. */
  async versions(name: string): Promise<FunctionVersion[]> {
    const latest = Number(await this.redis.get(this.keys.latest(name)));
    if (!latest) throw new JiffyError('not_found', `function ${name} is not deployed`);
    const top = Math.max(latest, Number(await this.redis.get(this.keys.versionSeq(name))) || 0);
    const ids = Array.from({ length: top }, (_, i) => this.keys.version(name, i + 1));
    const raws = await this.redis.mget(...ids);
    return raws.filter((r): r is string => !!r).map((r) => JSON.parse(r) as FunctionVersion);
  }

  /** The newest version of every deployed function, by name. */
  async list(): Promise<FunctionVersion[]> {
    const names = (await this.redis.smembers(this.keys.functions())).sort();
    const out: FunctionVersion[] = [];
    for (const n of names) {
      try { out.push(await this.get(n)); } catch { /* removed concurrently */ }
    }
    return out;
  }

  /** Deletes every version of `name`; returns the removed versions. */
  async remove(name: string): Promise<FunctionVersion[]> {
    const vs = await this.versions(name);
    const m = this.redis.multi().srem(this.keys.functions(), name).del(this.keys.latest(name), this.keys.versionSeq(name));
    for (const v of vs) m.del(this.keys.version(name, v.version));
    await m.exec();
    return vs;
  }
}
