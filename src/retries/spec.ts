import { z } from 'zod';
import { JiffyError } from '../errors.js';

/**
 * Retry settings of a function: how often an async (or queue-triggered) invocation is tried and
 * how long to wait between tries. They become the BullMQ job's `attempts`/`backoff`; sync calls
 * are never retried (their caller is waiting and decides). Spread `retryFields` into the function
 * settings schema so deploy flags, the gateway and the worker agree.
 */
export const BACKOFF_TYPES = ['fixed', 'exponential'] as const;

export interface Backoff {
  type: (typeof BACKOFF_TYPES)[number];
  /** Fixed: the wait; exponential: the first wait (then ×2 per try). */
  delayMs: number;
}

/** Parses `fixed:1000`, `exponential:200` or a bare `exponential` (1000 ms); throws invalid_argument. */
export function parseBackoff(s: string): Backoff {
  const [type, delay] = s.split(':');
  const delayMs = delay === undefined || delay === '' ? 1000 : Number(delay);
  if (!BACKOFF_TYPES.includes(type as Backoff['type']) || !Number.isInteger(delayMs) || delayMs < 0 || delayMs > 86_400_000) {
    throw new JiffyError('invalid_argument', `invalid backoff ${JSON.stringify(s)}: use fixed:MS or exponential:MS (MS from 0 to 86400000), e.g. exponential:500`, { details: { field: 'backoff' } });
  }
  return { type: type as Backoff['type'], delayMs };
}

const backoffSchema = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    try { return parseBackoff(v); } catch { return v; } // let zod report it with the field name
  },
  z.object({ type: z.enum(BACKOFF_TYPES), delayMs: z.number().int().min(0).max(86_400_000) }, { error: 'expected fixed:MS or exponential:MS' }),
);

/** Zod fields to spread into the function settings object schema. */
export const retryFields = {
  attempts: z.coerce.number().int().min(1).max(100).default(1),
  backoff: backoffSchema.default({ type: 'exponential', delayMs: 1000 }),
};

export interface RetrySettings {
  attempts: number;
  backoff: Backoff;
}

/** Retry settings of any settings object (versions deployed before retries existed get the defaults). */
export function retrySettingsOf(s: object): RetrySettings {
  const r = s as Partial<RetrySettings>;
  return { attempts: r.attempts ?? 1, backoff: r.backoff ?? { type: 'exponential', delayMs: 1000 } };
}

/** BullMQ job options for an async invocation of a function with these settings. */
export function retryJobOptions(s: object): { attempts: number; backoff: { type: Backoff['type']; delay: number } } {
  const r = retrySettingsOf(s);
  return { attempts: r.attempts, backoff: { type: r.backoff.type, delay: r.backoff.delayMs } };
}

/** `fixed:1000` form of a backoff (for query strings and `fn info`). */
export function formatBackoff(b: Backoff): string {
  return `${b.type}:${b.delayMs}`;
}
