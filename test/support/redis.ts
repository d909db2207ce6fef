import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRedisServer } from '../../src/queue/redis-server.js';

export interface TestRedis {
  url: string;
  /** A key prefix unique to this test run (use one per test for isolation). */
  prefix(label?: string): string;
  stop(): Promise<void>;
}

let n = 0;

/**
 * A private redis-server for one test file: its own free port, no persistence, its own temp dir,
 * removed on stop(). Fails loudly when redis-server is not installed.
 */
export async function startTestRedis(): Promise<TestRedis> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-test-redis-'));
  const server = await startRedisServer({ dir, persistent: false });
  const run = Math.random().toString(36).slice(2, 8);
  return {
    url: server.url,
    prefix: (label = 't') => `jt${run}${label}${++n}`,
    async stop() {
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
