/**
 * What an invocation produced. A worker stores this as the BullMQ job's return value (and
 * publishes it to the waiting gateway for sync calls); the gateway turns it into an HTTP response.
 * Function failures are outcomes, not job failures: the job completes with `ok: false`, so BullMQ
 * never retries a handler that threw and the error keeps its code across the queue.
 */
export type OutcomeCode =
  | 'function_error' // the handler threw / exec exited non-zero
  | 'function_crashed' // the instance died mid-invocation
  | 'out_of_memory' // the instance was OOM-killed
  | 'init_failed' // the handler could not be loaded
  | 'deadline_exceeded'
  | 'resource_exhausted'
  | 'not_found'
  | 'invalid_argument'
  | 'unavailable'
  | 'internal';

/** HTTP status for each outcome code (the gateway's single mapping table uses this too). */
export const OUTCOME_STATUS: Record<OutcomeCode, number> = {
  function_error: 500,
  function_crashed: 502,
  out_of_memory: 502,
  init_failed: 502,
  deadline_exceeded: 504,
  resource_exhausted: 429,
  not_found: 404,
  invalid_argument: 400,
  unavailable: 503,
  internal: 500,
};

/** Where the time went, in milliseconds (boot/init are 0 on a warm instance). */
export interface Timings {
  queueWaitMs: number;
  bootMs: number;
  initMs: number;
  handlerMs: number;
  totalMs: number;
}

export interface OutcomeError {
  code: OutcomeCode;
  message: string;
  /** The handler's error name/stack, or the instance's exit status. */
  details?: Record<string, unknown>;
}

export interface InvocationOutcome {
  id: string;
  ok: boolean;
  result?: unknown;
  resultEncoding?: 'base64';
  error?: OutcomeError;
  logs: string;
  coldStart: boolean;
  functionVersion: number;
  timings: Timings;
}

/** The job payload the gateway enqueues. */
export interface InvocationJob {
  name: string;
  version: number;
  mode: 'sync' | 'async' | 'http';
  event: unknown;
  eventEncoding?: 'base64';
  /** Reply channel of the waiting gateway (sync and raw-HTTP calls). */
  reply?: string;
  /** Async calls: URL that receives the final result by POST (src/retries/callbacks.ts). */
  callback?: string;
  enqueuedAt: number;
}

/** Wall-clock ms with sub-ms resolution (timings across gateway and worker processes). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/** Timings rounded to 10 µs for storage and headers. */
export function roundTimings(t: Timings): Timings {
  return { queueWaitMs: r2(t.queueWaitMs), bootMs: r2(t.bootMs), initMs: r2(t.initMs), handlerMs: r2(t.handlerMs), totalMs: r2(t.totalMs) };
}

/** Bounded log accumulator: keeps the first `limit` bytes and notes how much was dropped. */
export class LogBuffer {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly limit = 65536) {}

  append(text: string): void {
    if (!text) return;
    if (this.size < this.limit) this.parts.push(text);
    this.size += text.length;
  }

  toString(): string {
    const t = this.parts.join('');
    if (this.size <= this.limit) return t;
    return t.slice(0, this.limit) + `\n[jiffy: logs truncated, ${this.size} bytes written, ${this.limit} kept]\n`;
  }
}
