import { createHash } from 'node:crypto';
import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { customAlphabet } from 'nanoid';
import { JiffyError } from '../errors.js';
import { nowMs, type InvocationJob, type InvocationOutcome } from '../functions/outcome.js';
import { capacity, type FunctionVersion } from '../functions/spec.js';
import { retryJobOptions } from '../retries/spec.js';
import type { Keys } from './keys.js';

const idPart = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 16);

/** Takes a capacity slot unless `cap` are held; expired holders (crashed callers) are dropped first. */
const ACQUIRE_SLOT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1`;

/** What an Idempotency-Key may hold: 1–200 printable ASCII characters. */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,200}$/;

/**
 * Checks an Idempotency-Key header value; returns it, or throws invalid_argument naming the header.
 */
export function checkIdempotencyKey(key: string): string {
  if (IDEMPOTENCY_KEY.test(key)) return key;
  throw new JiffyError('invalid_argument', `invalid Idempotency-Key header: use 1–200 printable ASCII characters (got ${key.length} characters)`, { details: { field: 'Idempotency-Key' } });
}

/**
 * The dedupe id an Idempotency-Key maps to. Hashed so any printable key makes a valid job id
 * (keys may hold ':' or '.'), and over the function name too so one key on two functions is two
 * invocations.
 */
export function idempotencyDedupeId(fnName: string, key: string): string {
  return `idem-${createHash('sha256').update(`${fnName}\n${key}`).digest('hex').slice(0, 24)}`;
}

export type InvocationStatus = 'queued' | 'running' | 'succeeded' | 'failed';

export interface InvocationRecord {
  id: string;
  function: string;
  version: number;
  mode: InvocationJob['mode'];
  status: InvocationStatus;
  outcome?: InvocationOutcome;
  enqueuedAt: string;
}

export interface InvokerOptions {
  /** Redis for commands (shared). */
  redis: Redis;
  /** A second connection this invoker owns for its reply subscription. */
  subscriber: Redis;
  keys: Keys;
  gatewayId: string;
  /** How long results stay readable (seconds). */
  resultTtlS?: number;
  /** Added to a function's timeout while a sync caller waits (covers queueing and a cold start). */
  graceMs?: number;
}

function asyncJob(fn: FunctionVersion, event: Pick<InvocationJob, 'event' | 'eventEncoding'>, enqueuedAt: number, callback?: string): InvocationJob {
  return { name: fn.name, version: fn.version, mode: 'async', ...event, enqueuedAt, ...(callback ? { callback } : {}) };
}

/**
 * The gateway's side of invocations: each is a BullMQ job on the function's queue (one queue per
 * function, so a busy function's backlog never holds up another's and async jobs past the cap wait
 * in Redis). Sync callers get their result by Redis pub/sub on this gateway's reply channel, which
 * measured faster than QueueEvents/waitUntilFinished; results also stay in the job (TTL) so no
 * state a gateway restart would lose lives here.
 */
export class Invoker {
  private readonly queues = new Map<string, Queue>();
  private readonly waiting = new Map<string, (o: InvocationOutcome) => void>();
  private readonly replyChannel: string;

  constructor(private readonly o: InvokerOptions) {
    this.replyChannel = o.keys.replyChannel(o.gatewayId);
  }

  /** EVALSHA of ACQUIRE_SLOT (falls back to EVAL once per connection when the script is not cached). */
  private async acquireSlot(key: string, now: number, deadline: number, id: string, cap: number): Promise<unknown> {
    const r = this.o.redis as Redis & { jiffyAcquireSlot?: (...a: Array<string | number>) => Promise<unknown> };
    if (!r.jiffyAcquireSlot) r.defineCommand('jiffyAcquireSlot', { numberOfKeys: 1, lua: ACQUIRE_SLOT });
    return r.jiffyAcquireSlot!(key, now, deadline, id, cap);
  }

  /** Subscribes the reply channel; call before serving. */
  async start(): Promise<void> {
    this.o.subscriber.on('message', (ch: string, msg: string) => {
      if (ch !== this.replyChannel) return;
      const out = JSON.parse(msg) as InvocationOutcome;
      this.waiting.get(out.id)?.(out);
    });
    await this.o.subscriber.subscribe(this.replyChannel);
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(this.o.keys.queueName(name), { connection: this.o.redis, prefix: this.o.keys.bullPrefix() });
      this.queues.set(name, q);
    }
    return q;
  }

  private async add(fn: FunctionVersion, job: InvocationJob, id: string): Promise<void> {
    const ttl = this.o.resultTtlS ?? 3600;
    // Only async jobs are retried (their caller is not waiting); see src/retries/settle.ts.
    const retry = job.mode === 'async' ? retryJobOptions(fn.settings) : { attempts: 1 };
    await this.queue(fn.name).add('invoke', job, { jobId: id, ...retry, removeOnComplete: { age: ttl }, removeOnFail: { age: ttl } });
  }

  /**
   * Enqueues an async invocation; returns its id at once. `dedupeId` (queue/cron triggers) makes
   * the id stable so enqueueing the same trigger job twice yields one invocation.
   */
  async enqueue(fn: FunctionVersion, event: Pick<InvocationJob, 'event' | 'eventEncoding'>, extra: { callback?: string; dedupeId?: string } = {}): Promise<string> {
    const id = `${fn.name}.${extra.dedupeId ?? idPart()}`;
    await this.add(fn, asyncJob(fn, event, nowMs(), extra.callback), id);
    return id;
  }

  /**
   * Enqueues an async invocation under a client's Idempotency-Key (checked with
   * checkIdempotencyKey): the same key on the same function yields the same invocation for as
   * long as its job is kept (the result TTL). `replayed` tells the caller the job already existed.
   */
  async enqueueIdempotent(fn: FunctionVersion, event: Pick<InvocationJob, 'event' | 'eventEncoding'>, key: string, extra: { callback?: string } = {}): Promise<{ id: string; replayed: boolean }> {
    const id = `${fn.name}.${idempotencyDedupeId(fn.name, key)}`;
    const enqueuedAt = nowMs();
    // BullMQ's add script checks the job id and writes in one Lua call, so concurrent adds with
    // one id leave one job (the first). Ours is the one kept iff it carries our enqueuedAt
    // (sub-millisecond, so two requests do not share it).
    await this.add(fn, asyncJob(fn, event, enqueuedAt, extra.callback), id);
    const job = await Job.fromId(this.queue(fn.name), id);
    return { id, replayed: job !== undefined && (job.data as InvocationJob).enqueuedAt !== enqueuedAt };
  }

  /**
   * Runs a sync (or raw-HTTP) invocation and waits for its outcome. Past the function's capacity it
   * fails fast with resource_exhausted (429) instead of queueing behind other callers.
   */
  async call(fn: FunctionVersion, mode: 'sync' | 'http', event: Pick<InvocationJob, 'event' | 'eventEncoding'>): Promise<InvocationOutcome> {
    const id = `${fn.name}.${idPart()}`;
    const waitMs = fn.settings.timeoutS * 1000 + (this.o.graceMs ?? 30_000);
    const slots = this.o.keys.slots(fn.name);
    const now = nowMs();
    const got = await this.acquireSlot(slots, Math.floor(now), Math.floor(now + waitMs), id, capacity(fn.settings));
    if (got !== 1) {
      throw new JiffyError('resource_exhausted', `function ${fn.name} is at capacity (${capacity(fn.settings)} concurrent invocations: max-instances × concurrency); retry later or deploy with a higher --max-instances`);
    }
    const done = new Promise<InvocationOutcome>((resolve) => this.waiting.set(id, resolve));
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.add(fn, { name: fn.name, version: fn.version, mode, ...event, reply: this.replyChannel, enqueuedAt: now }, id);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new JiffyError('deadline_exceeded', `no result for invocation ${id} within ${Math.round(waitMs / 1000)} s (no worker running? check: jiffy worker); poll GET /v1/invocations/${id}`)), waitMs);
      });
      return await Promise.race([done, timeout]);
    } catch (e) {
      await this.o.redis.zrem(slots, id).catch(() => {});
      throw e;
    } finally {
      clearTimeout(timer);
      this.waiting.delete(id);
    }
  }

  /** Looks an invocation up by id (any gateway, any time within the result TTL). */
  async get(id: string): Promise<InvocationRecord> {
    const name = id.slice(0, id.lastIndexOf('.'));
    const job = name ? await Job.fromId(this.queue(name), id) : undefined;
    if (!job) throw new JiffyError('not_found', `invocation ${id} not found (results are kept ${this.o.resultTtlS ?? 3600} s)`);
    const data = job.data as InvocationJob;
    const outcome = (job.returnvalue ?? undefined) as InvocationOutcome | undefined;
    // The job hash and its state are separate reads: trust what the hash says once it finished
    // (finishedOn/returnvalue), and ask for the state only to tell queued from running.
    const state = job.finishedOn ? (job.failedReason && !outcome ? 'failed' : 'completed') : await job.getState();
    // It finished between the two reads: read the finished hash.
    if (!job.finishedOn && (state === 'completed' || state === 'failed')) return this.get(id);
    const status: InvocationStatus = state === 'active' ? 'running' : state === 'completed' ? (outcome?.ok ? 'succeeded' : 'failed') : state === 'failed' ? 'failed' : 'queued';
    const rec: InvocationRecord = { id, function: data.name, version: data.version, mode: data.mode, status, enqueuedAt: new Date(Math.floor(data.enqueuedAt)).toISOString() };
    if (outcome) rec.outcome = outcome;
    else if (state === 'failed') rec.outcome = { id, ok: false, error: { code: 'internal', message: job.failedReason ?? 'job failed' }, logs: '', coldStart: false, functionVersion: data.version, timings: { queueWaitMs: 0, bootMs: 0, initMs: 0, handlerMs: 0, totalMs: 0 } };
    return rec;
  }

  /** Jobs not yet finished on a function's queue. */
  async backlog(name: string): Promise<number> {
    const c = await this.queue(name).getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(c).reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    await this.o.subscriber.unsubscribe(this.replyChannel).catch(() => {});
  }
}
