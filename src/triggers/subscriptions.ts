import type { FunctionRegistry } from '../functions/registry.js';
import { triggersOf } from './spec.js';

/** Who listens where: trigger queue → function names, function name → cron pattern. */
export interface Subscriptions {
  queues: Map<string, string[]>;
  schedules: Map<string, string>;
}

/**
 * Reads the subscriptions from the newest version of every deployed function. Triggers belong
 * to a version's settings, so a redeploy without `--queue`/`--schedule` drops them and a removed
 * function has none — there is no second list to drift out of date.
 */
export async function readSubscriptions(registry: Pick<FunctionRegistry, 'list'>): Promise<Subscriptions> {
  const queues = new Map<string, string[]>();
  const schedules = new Map<string, string>();
  for (const fn of await registry.list()) {
    const t = triggersOf(fn.settings);
    for (const q of t.queues) queues.set(q, [...(queues.get(q) ?? []), fn.name]);
    if (t.schedule) schedules.set(fn.name, t.schedule);
  }
  return { queues, schedules };
}
