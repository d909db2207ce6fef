import type { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { JiffyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControlMessage } from '../queue/control.js';
import type { Keys } from '../queue/keys.js';
import type { BuiltFunction } from './build.js';
import { FunctionRegistry } from './registry.js';
import type { FunctionSettings, FunctionVersion } from './spec.js';

/** Builds a version's image from uploaded code (see build.ts). */
export type BuildFn = (fn: { name: string; version: number; settings: FunctionSettings }, code: Readable) => Promise<BuiltFunction>;

export interface DeployResult {
  fn: FunctionVersion;
  /** Workers that confirmed the version is ready on them. */
  preparedOn: string[];
  warning?: string;
}

export interface DeployerOptions {
  redis: Redis;
  keys: Keys;
  build: BuildFn;
  log: Logger;
  /** How long to wait for workers to prepare a version (default 120 s). */
  prepareTimeoutMs?: number;
  /** A worker counts as alive if it sent a heartbeat this recently. */
  workerTtlMs?: number;
}

/**
 * Deploys a function version: builds its image, records it, has every live worker prepare it
 * (image usable, min-warm instances up, queue served) and only then makes it the version `NAME`
 * resolves to, so invocations never wait on an image.
 */
export class Deployer {
  private readonly registry: FunctionRegistry;

  constructor(private readonly o: DeployerOptions) {
    this.registry = new FunctionRegistry(o.redis, o.keys);
  }

  async deploy(name: string, settings: FunctionSettings, code: Readable): Promise<DeployResult> {
    const version = await this.registry.nextVersion(name);
    const built = await this.o.build({ name, version, settings }, code);
    const fn: FunctionVersion = { name, version, settings, image: built.image, codeDiffId: built.codeDiffId, createdAt: new Date().toISOString() };
    await this.registry.put(fn);
    const workers = await this.liveWorkers();
    const preparedOn = workers.length ? await this.prepare(fn, workers) : [];
    await this.registry.publish(fn);
    await this.notify({ type: 'published', name, version });
    const warning = workers.length ? undefined : 'no worker is running: invocations will queue until one starts (jiffy worker, or jiffy up)';
    return { fn, preparedOn, warning };
  }

  /** Removes every version of a function and tells workers to stop its instances. */
  async remove(name: string): Promise<FunctionVersion[]> {
    const gone = await this.registry.remove(name);
    await this.notify({ type: 'remove', name });
    return gone;
  }

  /** Ids of workers whose heartbeat is recent. */
  async liveWorkers(): Promise<string[]> {
    return this.o.redis.zrangebyscore(this.o.keys.workers(), Date.now() - (this.o.workerTtlMs ?? 10_000), '+inf');
  }

  private async notify(m: ControlMessage): Promise<number> {
    return this.o.redis.publish(this.o.keys.controlChannel(), JSON.stringify(m));
  }

  /**
   * Publishes a prepare request and collects acks. Waits in short slices so a worker that dies
   * meanwhile (its heartbeat goes stale) is dropped from the expected set instead of stalling the
   * deploy until the timeout.
   */
  private async prepare(fn: FunctionVersion, workers: string[]): Promise<string[]> {
    const ack = this.o.keys.prepareAcks(nanoid(12));
    const blocking = this.o.redis.duplicate();
    const deadline = Date.now() + (this.o.prepareTimeoutMs ?? 120_000);
    const done: string[] = [];
    let expected = workers;
    try {
      await this.notify({ type: 'prepare', name: fn.name, version: fn.version, ack });
      while (expected.some((w) => !done.includes(w))) {
        const left = (deadline - Date.now()) / 1000;
        if (left <= 0) {
          const missing = expected.filter((w) => !done.includes(w));
          throw new JiffyError('unavailable', `workers ${missing.join(', ')} did not confirm ${fn.name}@${fn.version} was prepared in time; check their logs, then deploy again`);
        }
        const r = await blocking.blpop(ack, Math.min(2, Math.max(0.01, left)));
        if (!r) {
          const live = new Set(await this.liveWorkers());
          expected = expected.filter((w) => live.has(w) || done.includes(w));
          continue;
        }
        if (r[1].startsWith('error:')) {
          throw new JiffyError('unavailable', `a worker could not prepare ${fn.name}@${fn.version}: ${r[1].split(':').slice(2).join(':')}`);
        }
        done.push(r[1]);
      }
      return done;
    } finally {
      blocking.disconnect();
      await this.o.redis.del(ack);
    }
  }
}
