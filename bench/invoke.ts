/**
 * `npm run bench:invoke`: HTTP invoke latency and throughput against a real `jiffy up` (private
 * Redis, gateway, worker, launcher) on 127.0.0.1, with a temp store root.
 *   warm_c1 / warm_c16: sync invokes of a warm node function, 1 and 16 callers in parallel
 *   cold_exec: exec runtime (every call boots a fresh container)
 *   cold_node: first call after the node function scaled to zero (idle timeout), per phase
 * Flags: --n N (warm samples, default 2000), --cold N (cold samples, default 40), --json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { intFlag, percentiles, printResults, wantsJson, type Row } from './lib/stats.js';
import { deployQuery, tarDir } from '../src/functions/client.js';
import { repoRoot } from '../src/paths.js';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string; ms: number }

function request(url: string, method: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(url, { method, agent, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function startUp(root: string): Promise<{ url: string; child: ChildProcess }> {
  const env: NodeJS.ProcessEnv = { ...process.env, JIFFY_LOG_LEVEL: 'warn' };
  delete env.REDIS_URL;
  const child = spawn(process.execPath, [path.join(repoRoot(), 'dist/src/cli/main.js'), '--root', root, 'up', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /jiffy is up: (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`jiffy up exited (${code}) before it was ready: ${out}`)));
  });
  return { url, child };
}

async function deploy(url: string, name: string, dir: string, s: Record<string, unknown> & { runtime: string }): Promise<void> {
  const r = await request(`${url}/v1/functions/${name}?${deployQuery(s)}`, 'PUT', await tarDir(dir), { 'content-type': 'application/x-tar' });
  if (r.status !== 201) throw new Error(`deploy ${name}: ${r.status} ${r.body}`);
}

async function invoke(url: string, name: string, body = '{"name":"bench"}'): Promise<Reply> {
  const r = await request(`${url}/v1/functions/${name}/invoke`, 'POST', Buffer.from(body), { 'content-type': 'application/json' });
  if (r.status !== 200) throw new Error(`invoke ${name}: ${r.status} ${r.body}`);
  return r;
}

/** Server-Timing header → {queue, boot, init, handler} ms. */
function phases(h: http.IncomingHttpHeaders): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of String(h['server-timing'] ?? '').split(',')) {
    const m = /(\w+);dur=([\d.]+)/.exec(part);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Per-phase medians of a set of replies; `outside` = client-measured time the worker did not see (HTTP + gateway + reply). */
function phaseMedians(replies: Reply[]): Row {
  const ph: Record<string, number[]> = { queue: [], boot: [], init: [], handler: [], outside: [] };
  for (const r of replies) {
    for (const [k, v] of Object.entries(phases(r.headers))) ph[k]?.push(v);
    ph.outside!.push(r.ms - Number(r.headers['x-jiffy-duration-ms'] ?? 0));
  }
  const med = (k: string) => percentiles(ph[k]!).p50_ms;
  return { queue_p50_ms: med('queue'), boot_p50_ms: med('boot'), init_p50_ms: med('init'), handler_p50_ms: med('handler'), outside_p50_ms: med('outside') };
}

async function warm(url: string, n: number, conc: number): Promise<Row> {
  for (let i = 0; i < 200; i++) await invoke(url, 'bench-warm');
  const replies: Reply[] = [];
  const per = Math.ceil(n / conc);
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conc }, async () => {
    for (let i = 0; i < per; i++) replies.push(await invoke(url, 'bench-warm'));
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const p = percentiles(replies.map((r) => r.ms));
  return { p50_ms: p.p50_ms, p99_ms: p.p99_ms, mean_ms: p.mean_ms, n: p.n, rps: Math.round(replies.length / secs), ...phaseMedians(replies) };
}

async function cold(url: string, name: string, n: number, idleWaitMs: number): Promise<Row> {
  const replies: Reply[] = [];
  for (let i = 0; i < n; i++) {
    if (idleWaitMs) await new Promise((r) => setTimeout(r, idleWaitMs));
    const r = await invoke(url, name);
    if (r.headers['x-jiffy-cold-start'] !== 'true') throw new Error(`${name}: call ${i} was not a cold start; the idle wait is too short`);
    replies.push(r);
  }
  const p = percentiles(replies.map((r) => r.ms));
  return { p50_ms: p.p50_ms, p99_ms: p.p99_ms, mean_ms: p.mean_ms, n: p.n, rps: '', ...phaseMedians(replies) };
}

async function main(): Promise<void> {
  const n = intFlag('n', 2000);
  const nCold = intFlag('cold', 40);
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-bench-invoke-'));
  const { url, child } = await startUp(root);
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const ex = path.join(repoRoot(), 'examples');
    await deploy(url, 'bench-warm', path.join(ex, 'hello-node'), { runtime: 'node', concurrency: 32, maxInstances: 2, minWarm: 1 });
    // The smallest real exec function: echo the event back (cold = container boot + one exec).
    await deploy(url, 'bench-exec', path.join(ex, 'hello-exec'), { runtime: 'exec', handler: '/bin/cat', maxInstances: 4 });
    await deploy(url, 'bench-cold', path.join(ex, 'hello-node'), { runtime: 'node', idleTimeoutS: 0.05 });
    const results: Record<string, Row> = {};
    results.warm_c1 = await warm(url, n, 1);
    results.warm_c16 = await warm(url, n * 2, 16);
    results.cold_exec = await cold(url, 'bench-exec', nCold * 2, 0);
    results.cold_node = await cold(url, 'bench-cold', nCold, 250);
    printResults(results, {
      json: false,
      title: `HTTP invoke through jiffy up (gateway → BullMQ → worker → container), ${os.cpus().length} cores`,
      notes: ['Targets: warm p50 ≤ 3 ms, p99 ≤ 10 ms, ≥ 1500 warm invocations/s; cold exec p50 ≤ 15 ms. Phase columns are medians from the Server-Timing header: queue = gateway enqueue → worker starts the job (slot check, BullMQ add, pickup); boot = container boot through the launcher; init = runtime shim start + handler load; handler = request → reply over the instance pipe; outside = client latency the worker did not see (HTTP, gateway, result back by pub/sub).'],
    });
    if (wantsJson()) {
      const clean = Object.fromEntries(Object.entries(results).map(([k, r]) => [k, Object.fromEntries(Object.entries(r).filter(([, v]) => v !== ''))]));
      console.log(JSON.stringify(clean));
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
    agent.destroy();
    await fs.rm(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
