import { createHash } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { InvocationJob } from '../functions/outcome.js';
import { FunctionRegistry } from '../functions/registry.js';
import type { FunctionVersion } from '../functions/spec.js';
import { bodyToEvent } from '../gateway/events.js';
import type { Logger } from '../log.js';
import type { ControlMessage } from '../queue/control.js';
import type { Keys } from '../queue/keys.js';
import { createTriggerKeys, type TriggerKeys } from './keys.js';
import { readSubscriptions, type Subscriptions } from './subscriptions.js';

/** The event a function receives, as the invoke path takes it. */
export type TriggerEvent = Pick<InvocationJob, 'event' | 'eventEncoding'>;

/**
 * Enqueues an async invocation (the gateway's Invoker.enqueue). `dedupeId` is stable for one
 * trigger job and function, so a fan-out that is run again after a crash does not invoke twice
 * when the invoker uses it as the job id.
 */
export type TriggerEnqueue = (fn: FunctionVersion, event: TriggerEvent, dedupeId: string) => Promise<string>;

export interface TriggerServiceOptions {
  /** Commands and BullMQ connection (BullMQ duplicates it for its blocking reads). */
  redis: Redis;
  keys: Keys;
  log: Logger;
  enqueue: TriggerEnqueue;
  /** Also run when a function is removed (e.g. purge its dead letters). */
  onRemove?: (name: string) => Promise<void>;
  /** Jobs one trigger queue fans out at once (default 8). */
  concurrency?: number;
  /** Re-reads subscriptions this often besides on control messages (default 30 s). */
  resyncMs?: number;
}

/** A stable id suffix for "trigger job X invoked function F" (no '.' or ':', see Invoker.get). */
export function dedupeId(source: string, jobId: string, fn: string): string {
  return `t${createHash('sha256').update(`${source}\0${jobId}\0${fn}`).digest('hex').slice(0, 20)}`;
}

/**
 * Runs queue and cron triggers: one BullMQ Worker per subscribed trigger queue turns each job into
 * an async invocation of every subscribed function, and one job scheduler per scheduled function
 * (BullMQ `upsertJobScheduler`) feeds a schedule queue whose jobs invoke it. Subscriptions are
 * re-read from the registry on every deploy/remove notice, so triggers follow the newest version.
 * Any number of processes may run this: BullMQ hands each job to one of them and scheduler
 * upserts are idempotent.
 */
export class TriggerService {
  private readonly tk: TriggerKeys;
  private readonly registry: FunctionRegistry;
  private readonly workers = new Map<string, Worker>();
  private cronQueue?: Queue;
  private cronWorker?: Worker;
  private sub?: Redis;
  private subs: Subscriptions = { queues: new Map(), schedules: new Map() };
  private timer?: NodeJS.Timeout;
  private syncing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly o: TriggerServiceOptions) {
    this.tk = createTriggerKeys(o.keys.prefix);
    this.registry = new FunctionRegistry(o.redis, o.keys);
  }

  /** Subscribes to deploy/remove notices and starts serving the current subscriptions. */
  async start(): Promise<void> {
    this.sub = this.o.redis.duplicate();
    // ioredis reconnects (and resubscribes) on its own; the command connection reports outages.
    this.sub.on('error', () => {});
    this.sub.on('message', (ch: string, msg: string) => {
      if (ch !== this.o.keys.controlChannel()) return;
      const m = JSON.parse(msg) as ControlMessage;
      if (m.type === 'prepare') return;
      if (m.type === 'remove' && this.o.onRemove) void this.o.onRemove(m.name).catch((e) => this.o.log.warn({ err: e, fn: m.name }, 'remove hook failed'));
      void this.resync();
    });
    await this.sub.subscribe(this.o.keys.controlChannel());
    this.cronQueue = new Queue(this.tk.cronQueue(), { connection: this.o.redis, prefix: this.tk.cronPrefix() });
    await this.resync();
    this.timer = setInterval(() => void this.resync(), this.o.resyncMs ?? 30_000);
    this.timer.unref();
  }

  /** Re-reads subscriptions and adjusts workers and schedulers (serialised; safe to call any time). */
  resync(): Promise<void> {
    this.syncing = this.syncing.then(() => this.sync()).catch((e) => this.o.log.error({ err: e }, 'trigger resync failed'));
    return this.syncing;
  }

  /** Current subscriptions (as of the last resync). */
  subscriptions(): Subscriptions {
    return this.subs;
  }

  private async sync(): Promise<void> {
    if (this.closed) return;
    this.subs = await readSubscriptions(this.registry);
    for (const q of this.subs.queues.keys()) {
      if (!this.workers.has(q)) this.workers.set(q, this.newWorker(q, this.tk.queuePrefix(), (job) => this.onQueueJob(q, job)));
    }
    for (const [q, w] of this.workers) {
      if (!this.subs.queues.has(q)) { this.workers.delete(q); await w.close(); }
    }
    // The schedule worker starts with the first schedule (one blocking connection less until then)
    // and then stays: jobs a scheduler already queued are skipped by onSchedule if it went away.
    if (this.subs.schedules.size && !this.cronWorker) this.cronWorker = this.newWorker(this.tk.cronQueue(), this.tk.cronPrefix(), (job) => this.onSchedule(job));
    await this.syncSchedulers();
  }

  private async syncSchedulers(): Promise<void> {
    const queue = this.cronQueue!;
    for (const s of await queue.getJobSchedulers(0, -1)) {
      const want = this.subs.schedules.get(s.key);
      if (want !== s.pattern) await queue.removeJobScheduler(s.key);
    }
    for (const [fn, pattern] of this.subs.schedules) {
      const existing = await queue.getJobScheduler(fn);
      if (existing?.pattern === pattern) continue;
      await queue.upsertJobScheduler(fn, { pattern }, { name: 'schedule', data: { function: fn, pattern }, opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } });
      this.o.log.info({ fn, pattern }, 'schedule set');
    }
  }

  private newWorker(name: string, prefix: string, process: (job: Job) => Promise<unknown>): Worker {
    const w = new Worker(name, process, { connection: this.o.redis, prefix, concurrency: this.o.concurrency ?? 8, maxStalledCount: 2 });
    w.on('error', (e) => this.o.log.error({ err: e, queue: name }, 'trigger worker error'));
    return w;
  }

  private async onQueueJob(queue: string, job: Job): Promise<{ invocations: string[] }> {
    const fns = this.subs.queues.get(queue) ?? [];
    if (!fns.length) throw new Error(`no function subscribes to queue ${queue} any more; deploy one with --queue ${queue}`);
    const invocations: string[] = [];
    for (const name of fns) {
      const fn = await this.registry.get(name);
      const event = bodyToEvent(Buffer.from(JSON.stringify(job.data ?? null)), fn.settings.runtime);
      invocations.push(await this.o.enqueue(fn, event, dedupeId(`q:${queue}`, job.id!, name)));
    }
    return { invocations };
  }

  private async onSchedule(job: Job): Promise<{ invocation: string } | { skipped: string }> {
    const { function: name, pattern } = job.data as { function: string; pattern: string };
    if (this.subs.schedules.get(name) === undefined) {
      // The function was removed or redeployed without a schedule after this job was created.
      await this.resync();
      if (this.subs.schedules.get(name) === undefined) return { skipped: `${name} has no schedule now` };
    }
    const fn = await this.registry.get(name);
    const event = { source: 'schedule', schedule: pattern, scheduledAt: new Date(job.timestamp + (job.delay || 0)).toISOString() };
    const id = await this.o.enqueue(fn, bodyToEvent(Buffer.from(JSON.stringify(event)), fn.settings.runtime), dedupeId('cron', job.id!, name));
    return { invocation: id };
  }

  /** Stops every trigger worker (schedulers stay in Redis for the other processes). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.syncing;
    await Promise.all([...this.workers.values(), ...(this.cronWorker ? [this.cronWorker] : [])].map((w) => w.close()));
    this.workers.clear();
    await this.cronQueue?.close();
    this.sub?.disconnect();
  }
}
