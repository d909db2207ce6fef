import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { QueueDepthFn } from './metrics.js';

/**
 * A QueueDepthFn over BullMQ queues: `names()` is read on every scrape (functions come and go),
 * Queue objects are opened once per name on the shared connection and closed by `close()`.
 */
export function bullQueueDepths(o: { connection: Redis; prefix: string; names: () => Promise<string[]> | string[] }): QueueDepthFn & { close(): Promise<void> } {
  const queues = new Map<string, Queue>();
  const depths = async () => {
    const out: Record<string, number> = {};
    for (const name of await o.names()) {
      let q = queues.get(name);
      if (!q) {
        q = new Queue(name, { connection: o.connection, prefix: o.prefix });
        queues.set(name, q);
      }
      const c = await q.getJobCounts('waiting', 'delayed', 'prioritized');
      out[name] = Object.values(c).reduce((a, b) => a + b, 0);
    }
    return out;
  };
  return Object.assign(depths, {
    async close() {
      await Promise.all([...queues.values()].map((q) => q.close()));
      queues.clear();
    },
  });
}
