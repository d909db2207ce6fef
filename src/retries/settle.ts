import type { Job } from 'bullmq';
import type { InvocationJob, InvocationOutcome, OutcomeCode, OutcomeError } from '../functions/outcome.js';
import type { Logger } from '../log.js';
import { callbackPayload, type CallbackSender } from './callbacks.js';
import { deadLetterOf, type DeadLetters } from './dead-letters.js';

/**
 * Thrown by a worker's processor to make BullMQ try an async invocation again (after the job's
 * backoff). `name` and `code` survive into the job's failedReason/stacktrace across processes.
 */
export class InvocationFailed extends Error {
  override name = 'InvocationFailed';
  constructor(readonly code: OutcomeCode, message: string) {
    super(`${code}: ${message}`);
  }
}

/** Failures a retry cannot fix: the event or the function reference is wrong. */
const FINAL_CODES: OutcomeCode[] = ['invalid_argument', 'not_found'];

export interface SettleDeps {
  deadLetters: DeadLetters;
  callbacks?: CallbackSender;
  log: Logger;
}

export type Settled = { state: 'succeeded' } | { state: 'retrying'; attempt: number } | { state: 'dead_lettered'; deadLetterId: string };

type AsyncJob = Pick<Job, 'id' | 'attemptsMade' | 'opts'> & { data: InvocationJob & { callback?: string } };

/**
 * What one finished attempt of an async (or queue-triggered) invocation means: success or a final
 * failure completes the job (a failure is kept as a dead letter first) and fires the callback;
 * a failure with attempts left throws InvocationFailed so BullMQ retries it after the backoff.
 * Call it from the processor after the outcome is known; sync calls never come here.
 */
export async function settleAsync(d: SettleDeps, job: AsyncJob, outcome: InvocationOutcome): Promise<Settled> {
  const attempt = job.attemptsMade + 1;
  const allowed = job.opts.attempts ?? 1;
  if (outcome.ok) {
    fireCallback(d, job, outcome, attempt);
    return { state: 'succeeded' };
  }
  const error = outcome.error ?? { code: 'internal', message: 'invocation failed without an error' };
  if (attempt < allowed && !FINAL_CODES.includes(error.code)) {
    d.log.info({ invocation: job.id, attempt, of: allowed, code: error.code }, 'invocation failed; BullMQ retries it after the backoff');
    throw new InvocationFailed(error.code, error.message);
  }
  const deadLetterId = await d.deadLetters.add(deadLetterOf(job.id!, job.data, error, outcome.logs, attempt));
  fireCallback(d, job, outcome, attempt, deadLetterId);
  return { state: 'dead_lettered', deadLetterId };
}

function fireCallback(d: SettleDeps, job: AsyncJob, outcome: InvocationOutcome, attempts: number, deadLetterId?: string): void {
  if (job.data.callback && d.callbacks) d.callbacks.send(job.data.callback, callbackPayload(job.data, outcome, attempts, deadLetterId));
}

/**
 * For a worker's `failed` event: a job BullMQ failed for good outside settleAsync (it stalled
 * more often than allowed because workers died under it, or the processor threw) becomes a dead
 * letter too, so no async invocation disappears without a trace. Retries in progress are skipped.
 */
export async function deadLetterFailedJob(d: SettleDeps, job: Job | undefined, err: Error): Promise<string | undefined> {
  if (!job?.id) return undefined;
  const data = job.data as InvocationJob & { callback?: string };
  if (data.mode !== 'async' || (await job.getState()) !== 'failed') return undefined;
  const error: OutcomeError = { code: err.name === 'InvocationFailed' ? ((err as InvocationFailed).code ?? 'internal') : 'function_crashed', message: err.message };
  const id = await d.deadLetters.add(deadLetterOf(job.id, data, error, '', job.attemptsMade));
  d.log.warn({ invocation: job.id, deadLetter: id, reason: err.message }, 'async invocation failed for good outside the processor; kept as a dead letter');
  if (data.callback && d.callbacks) {
    const timings = { queueWaitMs: 0, bootMs: 0, initMs: 0, handlerMs: 0, totalMs: Math.max(0, Date.now() - data.enqueuedAt) };
    d.callbacks.send(data.callback, callbackPayload(data, { id: job.id, ok: false, error, logs: '', coldStart: false, functionVersion: data.version, timings }, job.attemptsMade, id));
  }
  return id;
}
