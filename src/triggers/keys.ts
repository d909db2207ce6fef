/**
 * BullMQ prefixes of triggers (same base prefix as src/queue/keys.ts). Trigger queues keep the
 * user's queue name as the BullMQ queue name under their own prefix, so an outside producer only
 * needs `new Queue(NAME, { connection, prefix: '<prefix>:triggers' })` and cannot collide with
 * Jiffy's per-function queues; schedules live in one queue under a third prefix.
 */
export interface TriggerKeys {
  /** BullMQ prefix of named trigger queues. */
  queuePrefix(): string;
  /** BullMQ prefix of the schedule queue. */
  cronPrefix(): string;
  /** Name of the queue holding every function's job scheduler. */
  cronQueue(): string;
}

export function createTriggerKeys(prefix = 'jiffy'): TriggerKeys {
  return {
    queuePrefix: () => `${prefix}:triggers`,
    cronPrefix: () => `${prefix}:cron`,
    cronQueue: () => 'schedules',
  };
}
