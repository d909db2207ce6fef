import type { Logger } from '../log.js';
import { nowMs, roundTimings, type InvocationJob, type InvocationOutcome, type OutcomeCode } from '../functions/outcome.js';
import type { ShimRequest } from '../functions/protocol.js';
import type { FunctionVersion } from '../functions/spec.js';
import { runExec } from './exec-runner.js';
import { InstanceError } from './instance.js';
import { Pool } from './pool.js';
import type { Spawner } from './spawner.js';

let execSeq = 0;

/**
 * Runs invocations on a worker: routes each to the pool of its function version (node/python) or
 * to a fresh container (exec), and turns every way it can end into an InvocationOutcome.
 */
export class Executor {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly spawner: Spawner, private readonly idPrefix: string, private readonly log: Logger) {}

  /** The pool of one function version (created on first use). */
  pool(fn: FunctionVersion): Pool {
    const key = `${fn.name}@${fn.version}`;
    let p = this.pools.get(key);
    if (!p) {
      p = new Pool(fn, this.spawner, `${this.idPrefix}-${fn.name}-${fn.version}`, this.log);
      this.pools.set(key, p);
    }
    return p;
  }

  /** Prepares a version: image usable here and `minWarm` instances started. */
  async prepare(fn: FunctionVersion): Promise<void> {
    await this.spawner.prepare(fn);
    if (fn.settings.runtime !== 'exec') await this.pool(fn).ensureMinWarm();
  }

  /** Runs one invocation to its outcome (never throws for function failures). */
  async run(fn: FunctionVersion, job: InvocationJob, id: string): Promise<InvocationOutcome> {
    const startedAt = nowMs();
    const queueWaitMs = Math.max(0, startedAt - job.enqueuedAt);
    const base = { id, functionVersion: fn.version, logs: '', coldStart: false };
    try {
      const r = fn.settings.runtime === 'exec' ? await this.runExec(fn, job, id) : await this.runShim(fn, job, id);
      return { ...base, ...r, timings: roundTimings({ ...r.timings, queueWaitMs, totalMs: queueWaitMs + nowMs() - startedAt }) };
    } catch (e) {
      const ie = e instanceof InstanceError ? e : new InstanceError('internal', `worker failed to run ${fn.name}@${fn.version}: ${(e as Error).message}`);
      if (!(e instanceof InstanceError)) this.log.error({ err: e, fn: fn.name }, 'invocation failed inside the worker');
      const error = { code: ie.code as OutcomeCode, message: ie.message, details: ie.details };
      const timings = roundTimings({ queueWaitMs, bootMs: 0, initMs: 0, handlerMs: 0, totalMs: queueWaitMs + nowMs() - startedAt });
      return { ...base, ok: false, error, logs: ie.logs, coldStart: ie.code === 'init_failed', timings };
    }
  }

  private async runShim(fn: FunctionVersion, job: InvocationJob, id: string) {
    const pool = this.pool(fn);
    const lease = await pool.acquire();
    const timeoutMs = fn.settings.timeoutS * 1000;
    const req: ShimRequest = {
      id,
      event: job.event,
      eventEncoding: job.eventEncoding,
      context: { invocationId: id, functionName: fn.name, functionVersion: fn.version, memoryLimitMb: fn.settings.memoryMb, deadlineMs: Date.now() + timeoutMs },
    };
    const t0 = performance.now();
    try {
      const reply = await lease.inst.invoke(req, timeoutMs);
      const handlerMs = performance.now() - t0;
      const timings = { bootMs: lease.bootMs, initMs: lease.initMs, handlerMs };
      if (reply.ok) return { ok: true, result: reply.result, resultEncoding: reply.resultEncoding, logs: reply.logs ?? '', coldStart: lease.cold, timings };
      const message = `${reply.error.name}: ${reply.error.message}`;
      return { ok: false, error: { code: 'function_error' as const, message, details: { stack: reply.error.stack } }, logs: reply.logs ?? '', coldStart: lease.cold, timings };
    } finally {
      pool.release(lease);
    }
  }

  private async runExec(fn: FunctionVersion, job: InvocationJob, id: string) {
    const input = job.eventEncoding === 'base64' ? Buffer.from(String(job.event), 'base64') : Buffer.from(typeof job.event === 'string' ? job.event : JSON.stringify(job.event ?? null));
    const env = { JIFFY_INVOCATION_ID: id, JIFFY_FUNCTION: fn.name, JIFFY_FUNCTION_VERSION: String(fn.version) };
    const r = await runExec(this.spawner, fn, `${this.idPrefix}-x${(++execSeq).toString(36)}`, input, env, fn.settings.timeoutS * 1000);
    const timings = { bootMs: r.bootMs, initMs: 0, handlerMs: r.handlerMs };
    return { ok: true, result: r.stdout.toString('base64'), resultEncoding: 'base64' as const, logs: r.logs, coldStart: true, timings };
  }

  /** Stops the pools of `name` (all versions, or all but `keep`). */
  async drop(name: string, keep?: number): Promise<void> {
    const gone: Pool[] = [];
    for (const [k, p] of this.pools) {
      if (p.fn.name === name && p.fn.version !== keep) { gone.push(p); this.pools.delete(k); }
    }
    await Promise.all(gone.map((p) => p.close()));
  }

  /** Number of live or starting instances per `name@version` (for status and tests). */
  instanceCounts(): Record<string, number> {
    return Object.fromEntries([...this.pools].map(([k, p]) => [k, p.size]));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}
