import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { hasCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { InvocationJob, InvocationOutcome } from '../functions/outcome.js';
import { FunctionRegistry } from '../functions/registry.js';
import { capacity, type FunctionVersion } from '../functions/spec.js';
import { connectRedis, waitReady } from '../queue/connection.js';
import type { ControlMessage } from '../queue/control.js';
import type { Keys } from '../queue/keys.js';
import type { Metrics } from '../metrics/metrics.js';
import { CallbackSender } from '../retries/callbacks.js';
import { DeadLetters } from '../retries/dead-letters.js';
import { createRetryKeys } from '../retries/keys.js';
import { deadLetterFailedJob, settleAsync, type SettleDeps } from '../retries/settle.js';
import { Executor } from './executor.js';
import type { Spawner } from './spawner.js';

export interface FunctionWorkerOptions {
  redisUrl: string;
  keys: Keys;
  spawner: Spawner;
  log: Logger;
  /** Unique per worker process; also prefixes container ids. */
  workerId?: string;
  heartbeatMs?: number;
  /** Records invocations and instance counts (src/metrics). */
  metrics?: Metrics;
}

/** How long a worker counts as alive after its last heartbeat. */
export const WORKER_TTL_MS = 10_000;

/**
 * A worker process's function side: one BullMQ Worker per function queue (concurrency = the
 * function's capacity, so async jobs past the cap simply wait in Redis), an Executor holding the
 * warm pools, and a control-channel subscription through which deploys ask it to prepare a version.
 */
export class FunctionWorker {
  readonly id: string;
  readonly executor: Executor;
  private readonly queues = new Map<string, Worker>();
  private readonly fns = new Map<string, FunctionVersion>();
  private readonly registry: FunctionRegistry;
  private heartbeat?: NodeJS.Timeout;
  /** Invocations being run here, settled once BullMQ has recorded their end (see close()). */
  private readonly running = new Map<string, { ended: Promise<void>; end: () => void }>();
  /** Retries, dead letters and callbacks of async invocations. */
  private readonly settle: SettleDeps & { callbacks: CallbackSender };

  /**
   * `cmd` carries replies (latency-critical publishes) and registry reads; BullMQ's Workers share
   * `bull`, so a reply never waits behind BullMQ's own pipelined commands.
   */
  private constructor(private readonly o: FunctionWorkerOptions, private readonly cmd: Redis, private readonly sub: Redis, private readonly bull: Redis) {
    this.id = o.workerId ?? `w${nanoid(6).replace(/[-_]/g, 'x').toLowerCase()}`;
    this.executor = new Executor(o.spawner, this.id, o.log);
    this.registry = new FunctionRegistry(cmd, o.keys);
    this.settle = { deadLetters: new DeadLetters(cmd, createRetryKeys(o.keys.prefix)), callbacks: new CallbackSender({ log: o.log }), log: o.log };
    o.metrics?.watchInstances(() => this.executor.instanceCounts());
  }

  /** Connects, serves every deployed function's queue and starts heartbeats. */
  static async start(o: FunctionWorkerOptions): Promise<FunctionWorker> {
    const cmd = connectRedis(o.redisUrl);
    const sub = connectRedis(o.redisUrl);
    const bull = connectRedis(o.redisUrl);
    await Promise.all([waitReady(cmd, o.redisUrl), waitReady(sub, o.redisUrl), waitReady(bull, o.redisUrl)]);
    const w = new FunctionWorker(o, cmd, sub, bull);
    await w.init();
    return w;
  }

  private async init(): Promise<void> {
    await this.sub.subscribe(this.o.keys.controlChannel());
    this.sub.on('message', (_ch: string, msg: string) => void this.onControl(JSON.parse(msg) as ControlMessage));
    for (const fn of await this.registry.list()) {
      await this.executor.prepare(fn).catch((e) => this.o.log.warn({ err: e, fn: fn.name }, 'preparing a function at startup failed'));
      this.serveQueue(fn);
    }
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat().catch(() => {}), this.o.heartbeatMs ?? 2000);
    this.heartbeat.unref();
  }

  private beat(): Promise<unknown> {
    return this.cmd.zadd(this.o.keys.workers(), Date.now(), this.id);
  }

  private async onControl(m: ControlMessage): Promise<void> {
    try {
      if (m.type === 'prepare') {
        const fn = await this.version(m.name, m.version);
        await this.executor.prepare(fn);
        this.serveQueue(fn);
        await this.executor.drop(fn.name, fn.version);
        await this.cmd.multi().rpush(m.ack, this.id).pexpire(m.ack, 60_000).exec();
      } else if (m.type === 'published' && !this.queues.has(m.name)) {
        // A worker that started between a deploy's worker count and its publish.
        const fn = await this.version(m.name, m.version);
        await this.executor.prepare(fn);
        this.serveQueue(fn);
      } else if (m.type === 'remove') {
        await this.queues.get(m.name)?.close();
        this.queues.delete(m.name);
        await this.executor.drop(m.name);
      }
    } catch (e) {
      this.o.log.error({ err: e, msg: m }, 'control message failed');
      if (m.type === 'prepare') await this.cmd.multi().rpush(m.ack, `error:${this.id}:${(e as Error).message}`).pexpire(m.ack, 60_000).exec();
    }
  }

  /** Versions are immutable, so a worker caches them forever. */
  private async version(name: string, version: number): Promise<FunctionVersion> {
    const key = `${name}@${version}`;
    let fn = this.fns.get(key);
    if (!fn) {
      fn = await this.registry.get(name, version);
      this.fns.set(key, fn);
    }
    return fn;
  }

  private serveQueue(fn: FunctionVersion): void {
    const existing = this.queues.get(fn.name);
    if (existing) {
      existing.concurrency = capacity(fn.settings);
      return;
    }
    const w = new Worker(this.o.keys.queueName(fn.name), (job: Job) => this.process(job), {
      connection: this.bull,
      prefix: this.o.keys.bullPrefix(),
      concurrency: capacity(fn.settings),
      maxStalledCount: 1,
    });
    w.on('error', (e) => this.o.log.error({ err: e, fn: fn.name }, 'queue worker error'));
    w.on('failed', (job, err) => void deadLetterFailedJob(this.settle, job, err).catch((e) => this.o.log.error({ err: e, job: job?.id }, 'dead-lettering a failed job failed')));
    // 'completed'/'failed' fire after BullMQ has written the job's end to Redis (see close()).
    const ended = (job?: Job) => { if (job?.id) this.running.get(job.id)?.end(); };
    w.on('completed', ended);
    w.on('failed', ended);
    this.queues.set(fn.name, w);
  }

  private async process(job: Job): Promise<InvocationOutcome> {
    const data = job.data as InvocationJob;
    const id = job.id!;
    this.track(id);
    const slots = this.o.keys.slots(data.name);
    const recorded = this.o.metrics?.invocationStarted(data.name);
    let outcome: InvocationOutcome;
    try {
      const fn = await this.version(data.name, data.version);
      // Sync calls took their slot at the gateway; async ones take it here so sync callers see them.
      if (data.mode === 'async') await this.cmd.zadd(slots, Date.now() + fn.settings.timeoutS * 1000 + 60_000, id);
      outcome = await this.executor.run(fn, data, id);
    } catch (e) {
      const timings = { queueWaitMs: Date.now() - data.enqueuedAt, bootMs: 0, initMs: 0, handlerMs: 0, totalMs: Date.now() - data.enqueuedAt };
      const code = hasCode(e, 'not_found') ? 'not_found' : 'unavailable';
      outcome = { id, ok: false, error: { code, message: (e as Error).message }, logs: '', coldStart: false, functionVersion: data.version, timings };
    }
    // One write: the reply first (the caller waits on it), then the slot is freed. Redis runs a
    // connection's commands in order, so the slot is free before the caller can ask again.
    const m = this.cmd.pipeline();
    if (data.reply) m.publish(data.reply, JSON.stringify(outcome));
    await m.zrem(slots, id).exec();
    recorded?.(outcome);
    // Async failures with attempts left throw here so BullMQ retries them; the last one is a dead letter.
    if (data.mode === 'async') await settleAsync(this.settle, job, outcome);
    return outcome;
  }

  private track(id: string): void {
    let end!: () => void;
    const ended = new Promise<void>((resolve) => { end = resolve; });
    this.running.set(id, { ended, end });
    void ended.then(() => this.running.delete(id));
  }

  /** Stops taking jobs, waits for running ones, stops every instance. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    // BullMQ's graceful close first disconnects its blocking client and waits for 'end', which
    // ioredis never emits while that client is between reconnect attempts (right after a Redis
    // restart: taskforcesh/bullmq#4656), so it can hang for good. A graceful stop needs every
    // invocation running here to end and be recorded; BullMQ then gets a moment to finish closing.
    const closing = Promise.all([...this.queues.values()].map((w) => w.close()));
    await Promise.all([...this.running.values()].map((r) => r.ended));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closing, new Promise((resolve) => { timer = setTimeout(resolve, 2000); })]);
    clearTimeout(timer);
    this.queues.clear();
    await this.executor.close();
    await this.settle.callbacks.close();
    await this.cmd.zrem(this.o.keys.workers(), this.id).catch(() => {});
    this.sub.disconnect();
    this.bull.disconnect();
    this.cmd.disconnect();
  }
}
