import type { Redis } from 'ioredis';
import { JiffyError } from '../errors.js';
import type { InvocationJob, OutcomeError } from '../functions/outcome.js';
import type { RetryKeys } from './keys.js';

/** An async or queue-triggered invocation that failed its last attempt, with what is needed to replay it. */
export interface DeadLetter {
  /** Entry id in the function's dead-letter stream (what replay/drop take). */
  id: string;
  invocationId: string;
  function: string;
  version: number;
  event: unknown;
  eventEncoding?: 'base64';
  callback?: string;
  error: OutcomeError;
  /** The last attempt's logs (first 8 KiB). */
  logs: string;
  attempts: number;
  enqueuedAt: string;
  failedAt: string;
}

export type NewDeadLetter = Omit<DeadLetter, 'id' | 'failedAt'>;

const LOG_LIMIT = 8192;
const ENTRY_ID = /^\d{1,20}-\d{1,20}$/;

/** The dead-letter entry for a job's data and its last error. */
export function deadLetterOf(invocationId: string, data: InvocationJob & { callback?: string }, error: OutcomeError, logs: string, attempts: number): NewDeadLetter {
  const d: NewDeadLetter = { invocationId, function: data.name, version: data.version, event: data.event, error, logs, attempts, enqueuedAt: new Date(Math.floor(data.enqueuedAt)).toISOString() };
  if (data.eventEncoding) d.eventEncoding = data.eventEncoding;
  if (data.callback) d.callback = data.callback;
  return d;
}

/**
 * Dead letters, one Redis stream per function: stream entry ids are time-ordered and unique, XRANGE
 * pages through them and XDEL drops one, and MAXLEN bounds a function that fails forever so it
 * cannot fill Redis (the oldest letters go first; `maxPerFunction` says how many stay).
 */
export class DeadLetters {
  constructor(private readonly redis: Redis, private readonly keys: RetryKeys, private readonly maxPerFunction = 10_000) {}

  /** Records a dead letter; returns its entry id. */
  async add(d: NewDeadLetter): Promise<string> {
    const entry = { ...d, logs: d.logs.length > LOG_LIMIT ? d.logs.slice(0, LOG_LIMIT) + '\n[jiffy: logs truncated]\n' : d.logs, failedAt: new Date().toISOString() };
    const id = await this.redis.xadd(this.keys.deadLetters(d.function), 'MAXLEN', '~', this.maxPerFunction, '*', 'd', JSON.stringify(entry));
    return id!;
  }

  /** Oldest first, up to `limit`, starting after entry `after` (for paging). */
  async list(fn: string, o: { limit?: number; after?: string } = {}): Promise<DeadLetter[]> {
    const start = o.after ? `(${checkId(o.after)}` : '-';
    const rows = await this.redis.xrange(this.keys.deadLetters(fn), start, '+', 'COUNT', Math.min(Math.max(o.limit ?? 100, 1), 1000));
    return rows.map(([id, fields]) => parse(id, fields));
  }

  async count(fn: string): Promise<number> {
    return this.redis.xlen(this.keys.deadLetters(fn));
  }

  /** One dead letter; throws not_found saying how to list them. */
  async get(fn: string, id: string): Promise<DeadLetter> {
    const rows = await this.redis.xrange(this.keys.deadLetters(fn), checkId(id), checkId(id));
    if (!rows.length) throw new JiffyError('not_found', `dead letter ${id} of function ${fn} not found (replayed or dropped already?); list them with: jiffy fn dead-letters ${fn}`);
    return parse(rows[0]![0], rows[0]![1]);
  }

  /** Drops one dead letter; throws not_found if it is not there. */
  async drop(fn: string, id: string): Promise<void> {
    const n = await this.redis.xdel(this.keys.deadLetters(fn), checkId(id));
    if (!n) throw new JiffyError('not_found', `dead letter ${id} of function ${fn} not found; list them with: jiffy fn dead-letters ${fn}`);
  }

  /** Removes every dead letter of a function (when the function is removed). */
  async purge(fn: string): Promise<void> {
    await this.redis.del(this.keys.deadLetters(fn));
  }
}

function checkId(id: string): string {
  if (!ENTRY_ID.test(id)) throw new JiffyError('invalid_argument', `invalid dead-letter id ${JSON.stringify(id)}: expected an id like 1700000000000-0 from jiffy fn dead-letters`);
  return id;
}

function parse(id: string, fields: string[]): DeadLetter {
  const i = fields.indexOf('d');
  return { ...(JSON.parse(fields[i + 1] ?? '{}') as Omit<DeadLetter, 'id'>), id };
}
