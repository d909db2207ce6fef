import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

/**
 * Trigger settings of a function: the named queues it subscribes to and an optional cron schedule.
 * Spread `triggerFields` into the function settings object schema; versions deployed before
 * triggers existed read as "no triggers" through triggersOf().
 */

/** Queue names: safe as BullMQ queue names (no ':', which BullMQ uses as its separator). */
export const QUEUE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** True when `s` is a cron pattern BullMQ's scheduler accepts (5 fields, or 6 with seconds). */
export function isCron(s: string): boolean {
  try {
    CronExpressionParser.parse(s);
    return s.trim().split(/\s+/).length >= 5;
  } catch {
    return false;
  }
}

const queuesSchema = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v),
  z.array(z.string().regex(QUEUE_NAME_RE, 'queue names are 1-100 of A-Z a-z 0-9 _ . - starting with a letter or digit')).max(32),
);

/** Zod fields to spread into the function settings object schema. */
export const triggerFields = {
  /** Named queues whose jobs invoke the function (`--queue NAME`, repeatable; `queue=a,b` in a query). */
  queues: queuesSchema.default([]),
  /** Cron pattern (`--schedule '*\/5 * * * *'`), empty = none. */
  schedule: z.string().max(200).refine((s) => s === '' || isCron(s), 'expected a cron pattern like "*/5 * * * *"').optional(),
};

export interface TriggerSettings {
  queues: string[];
  schedule?: string;
}

/** Trigger settings of any settings object. */
export function triggersOf(s: object): TriggerSettings {
  const t = s as Partial<TriggerSettings>;
  return { queues: Array.isArray(t.queues) ? t.queues : [], ...(t.schedule ? { schedule: t.schedule } : {}) };
}
