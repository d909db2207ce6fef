import type { Command } from 'commander';
import { ImageStore } from '../../images/store.js';
import { createLogger } from '../../log.js';
import { defaultRoot } from '../../paths.js';
import { authRequired } from '../../auth/policy.js';
import { createKeys } from '../../queue/keys.js';

// The server parts (launcher, hono, bullmq) load only when a server command runs, so every other
// `jiffy` command starts fast and does not depend on them.
const allInOne = () => import('../../gateway/all-in-one.js');
const gatewayServer = () => import('../../gateway/server.js');
const workerParts = async () => ({ ...(await import('../../worker/spawners.js')), ...(await import('../../worker/worker.js')) });

/** Resolves when the process gets SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

function redisUrlOrDefault(v?: string): string {
  return v || process.env.REDIS_URL || 'redis://127.0.0.1:6379';
}

/** `jiffy up` (all-in-one), `jiffy gateway` and `jiffy worker` (separately, sharing REDIS_URL). */
export function register(program: Command): void {
  program
    .command('up')
    .description('run Redis (private, unless REDIS_URL is set), the gateway and a worker in one process')
    .option('--port <port>', 'gateway port', '8080')
    .option('--host <host>', 'gateway address', '127.0.0.1')
    .option('--prefix <prefix>', 'Redis key prefix', 'jiffy')
    .option('--auth <on|off>', 'require API keys (default: on unless --host is loopback)')
    .action(async (o: { port: string; host: string; prefix: string; auth?: string }) => {
      const log = createLogger('jiffy-up');
      const auth = authRequired(o.host, o.auth);
      const { startAllInOne } = await allInOne();
      const up = await startAllInOne({ root: defaultRoot(), log, port: Number(o.port), host: o.host, redisUrl: process.env.REDIS_URL || undefined, prefix: o.prefix, gateway: { auth } });
      console.log(`jiffy is up: ${up.url} (redis ${up.redisUrl}, store ${defaultRoot()}); Ctrl-C stops it`);
      if (auth) console.log(`auth is on: create a key with: jiffy keys create --scope admin --redis ${up.redisUrl} --prefix ${o.prefix}`);
      const sig = await untilSignal();
      console.error(`jiffy: ${sig}: stopping gateway, worker and redis`);
      await up.close();
    });

  program
    .command('gateway')
    .description('run the HTTP gateway (REDIS_URL, default redis://127.0.0.1:6379)')
    .option('--port <port>', 'port', '8080')
    .option('--host <host>', 'address', '127.0.0.1')
    .option('--prefix <prefix>', 'Redis key prefix', 'jiffy')
    .option('--redis <url>', 'Redis URL (default $REDIS_URL)')
    .option('--max-body <bytes>', 'largest invocation body', String(6 * 1024 * 1024))
    .option('--auth <on|off>', 'require API keys (default: on unless --host is loopback)')
    .action(async (o: { port: string; host: string; prefix: string; redis?: string; maxBody: string; auth?: string }) => {
      const log = createLogger('jiffy-gateway');
      const auth = authRequired(o.host, o.auth);
      const store = await ImageStore.open(defaultRoot());
      const { serveGateway } = await gatewayServer();
      const { createMetrics } = await import('../../metrics/metrics.js');
      const gw = await serveGateway({ redisUrl: redisUrlOrDefault(o.redis), keys: createKeys(o.prefix), store, log, port: Number(o.port), host: o.host, maxBodyBytes: Number(o.maxBody), auth, metrics: createMetrics() });
      console.log(`jiffy gateway: ${gw.url}${auth ? ' (auth on: API keys required, see jiffy keys create)' : ''}`);
      await untilSignal();
      await gw.close();
    });

  program
    .command('worker')
    .description('run a worker: takes invocations from Redis and runs them in containers')
    .option('--prefix <prefix>', 'Redis key prefix', 'jiffy')
    .option('--redis <url>', 'Redis URL (default $REDIS_URL)')
    .option('--metrics-port <port>', 'serve this worker\'s Prometheus /metrics on 127.0.0.1:PORT')
    .action(async (o: { prefix: string; redis?: string; metricsPort?: string }) => {
      const log = createLogger('jiffy-worker');
      const store = await ImageStore.open(defaultRoot());
      const { createSpawner, FunctionWorker } = await workerParts();
      const spawner = await createSpawner(store, log);
      const metrics = o.metricsPort ? (await import('../../metrics/metrics.js')).createMetrics() : undefined;
      const w = await FunctionWorker.start({ redisUrl: redisUrlOrDefault(o.redis), keys: createKeys(o.prefix), spawner, log, metrics });
      const served = metrics ? await (await import('../../metrics/routes.js')).serveMetrics(metrics, Number(o.metricsPort)) : undefined;
      console.log(`jiffy worker ${w.id}: serving functions from ${redisUrlOrDefault(o.redis)}${served ? `; metrics at ${served.url}` : ''}`);
      await untilSignal();
      await served?.close();
      await w.close();
      await spawner.close();
    });
}
