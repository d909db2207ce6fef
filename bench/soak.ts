/**
 * `node dist/bench/soak.js [--duration 10m|90s] [--rate N] [--json]`: a bounded soak of the
 * function stack with the production pieces on (retries, dead letters, metrics, triggers), on
 * 127.0.0.1 with a temp store root and a private Redis. At a steady rate it mixes warm sync calls
 * (node), cold sync calls (exec: a fresh container each), async calls that fail (retried, then
 * dead-lettered) and async calls that time out. At the end every invocation must be accounted
 * for — succeeded, failed with a reason, or in the dead-letter list — and no containers, mounts,
 * cgroups, stuck jobs or function keys in Redis may be left. Not a CI test (the short version,
 * --duration 20s, runs from test/production-soak.test.ts).
 */
import { pathToFileURL } from 'node:url';
import { connectRedis } from '../src/queue/connection.js';
import { ProdStack } from '../test/production-support.js';
import { cgroupsWithPrefix } from '../test/support/processes.js';
import { percentiles, printResults, wantsJson, type Row } from './lib/stats.js';

export type Kind = 'warm' | 'cold' | 'failing' | 'timeout';

/** Per kind: what was sent and how each one ended. */
export interface KindTally {
  issued: number;
  succeeded: number;
  /** Failed with a reason: error code → count. */
  failed: Record<string, number>;
  /** Async failures found in the dead-letter list. */
  deadLettered: number;
  /** Async ones that never finished or failed without a dead letter (see missing()). */
  unaccounted: number;
  latenciesMs: number[];
}

export interface SoakResult {
  durationS: number;
  rate: number;
  kinds: Record<Kind, KindTally>;
  /** Sends skipped because too many were in flight (the stack fell behind the rate). */
  skipped: number;
  leaks: string[];
  ok: boolean;
}

const NODE_FN = `
export async function handler(event) {
  if (event && event.sleep) await new Promise((r) => setTimeout(r, event.sleep));
  if (event && event.fail) throw new Error('soak failure ' + event.i);
  return { i: event && event.i };
}`;
const EXEC_FN = '#!/bin/sh\ncat\n';

// 20 slots per round: 12 warm, 3 cold, 3 failing, 2 timing out — a steady, repeatable mix.
const MIX: Kind[] = ['warm', 'cold', 'warm', 'failing', 'warm', 'warm', 'timeout', 'warm', 'cold', 'warm', 'failing', 'warm', 'warm', 'cold', 'warm', 'timeout', 'warm', 'failing', 'warm', 'warm'];
const FN: Record<Kind, string> = { warm: 'soak-warm', cold: 'soak-cold', failing: 'soak-fail', timeout: 'soak-slow' };
const MAX_INFLIGHT = 256;

/** Parses `10m`, `20s`, `1500ms` or plain seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new Error(`--duration ${JSON.stringify(s)}: use e.g. 10m, 90s or 1500ms`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

async function deployAll(s: ProdStack): Promise<void> {
  await s.deploy(FN.warm, { 'index.mjs': NODE_FN }, { runtime: 'node', maxInstances: 2, concurrency: 4, minWarm: 1 });
  await s.deploy(FN.cold, { handler: EXEC_FN }, { runtime: 'exec', maxInstances: 4 });
  await s.deploy(FN.failing, { 'index.mjs': NODE_FN }, { runtime: 'node', maxInstances: 2, attempts: 2, backoff: { type: 'fixed', delayMs: 50 } } as never);
  await s.deploy(FN.timeout, { 'index.mjs': NODE_FN }, { runtime: 'node', maxInstances: 2, timeoutS: 0.3 });
}

function tally(): KindTally {
  return { issued: 0, succeeded: 0, failed: {}, deadLettered: 0, unaccounted: 0, latenciesMs: [] };
}

/** One send: sync kinds settle now; async kinds return their id to be checked at the end. */
async function send(s: ProdStack, kind: Kind, i: number, t: KindTally): Promise<string | undefined> {
  const body = JSON.stringify(kind === 'failing' ? { i, fail: true } : kind === 'timeout' ? { i, sleep: 2000 } : { i });
  const async = kind === 'failing' || kind === 'timeout';
  const t0 = performance.now();
  let res: Response;
  try {
    res = await s.call(`/v1/functions/${FN[kind]}/invoke${async ? '?mode=async' : ''}`, { method: 'POST', body });
  } catch (e) {
    t.failed[`network: ${(e as Error).message}`] = (t.failed[`network: ${(e as Error).message}`] ?? 0) + 1;
    return undefined;
  }
  const text = await res.text();
  if (async && res.status === 202) return (JSON.parse(text) as { id: string }).id;
  if (res.status === 200) {
    t.succeeded++;
    t.latenciesMs.push(performance.now() - t0);
    return undefined;
  }
  let code = `http_${res.status}`;
  try { code = (JSON.parse(text) as { error: { code: string } }).error.code; } catch { /* keep the status */ }
  t.failed[code] = (t.failed[code] ?? 0) + 1;
  return undefined;
}

/** Waits for every async id, then checks each failure is in its function's dead letters. */
async function settleAsync(s: ProdStack, ids: Map<string, Kind>, kinds: Record<Kind, KindTally>): Promise<void> {
  const failedIds = new Map<string, Kind>();
  const list = [...ids];
  for (let k = 0; k < list.length; k += 32) {
    await Promise.all(list.slice(k, k + 32).map(async ([id, kind]) => {
      const rec = await s.result(id, 120_000).catch(() => undefined);
      if (!rec) { kinds[kind].unaccounted++; return; }
      if (rec.status === 'succeeded') kinds[kind].succeeded++;
      else failedIds.set(id, kind);
    }));
  }
  const dead = new Set<string>();
  for (const fn of [FN.failing, FN.timeout]) {
    let after = '';
    for (;;) {
      const j = (await (await s.call(`/v1/functions/${fn}/dead-letters?limit=1000${after ? `&after=${after}` : ''}`)).json()) as { deadLetters: Array<{ id: string; invocationId: string }> };
      for (const d of j.deadLetters) dead.add(d.invocationId);
      if (j.deadLetters.length < 1000) break;
      after = j.deadLetters.at(-1)!.id;
    }
  }
  for (const [id, kind] of failedIds) {
    if (dead.has(id)) kinds[kind].deadLettered++;
    else kinds[kind].unaccounted++;
  }
}

/** Removes the functions and lists what is left: containers, mounts, cgroups, stuck jobs, keys. */
async function teardown(s: ProdStack): Promise<string[]> {
  const redis = connectRedis(s.redis.url);
  try {
    for (const fn of Object.values(FN)) await s.call(`/v1/functions/${fn}`, { method: 'DELETE' });
    const deadline = Date.now() + 15_000;
    let keys: string[] = [];
    do {
      await new Promise((r) => setTimeout(r, 100));
      keys = await s.functionKeys(redis);
    } while (keys.length && Date.now() < deadline);
    const locks = await redis.keys(`${s.keys.bullPrefix()}:*:lock`);
    const stuck: string[] = [];
    for (const fn of Object.values(FN)) {
      for (const state of ['wait', 'active', 'delayed', 'prioritized']) {
        const n = await redis.call('TYPE', `${s.keys.bullPrefix()}:${s.keys.queueName(fn)}:${state}`) === 'none' ? 0 : 1;
        if (n) stuck.push(`${fn}: jobs left in ${state}`);
      }
    }
    const left = await s.stop();
    const cgroups = await cgroupsWithPrefix(`${s.workerId}-`);
    return [...keys.map((k) => `redis key ${k}`), ...locks.map((k) => `job lock ${k}`), ...stuck, ...left, ...cgroups.map((c) => `cgroup ${c}`)];
  } finally {
    redis.disconnect();
  }
}

/** Runs the soak and returns the accounting (it also prints nothing: see main()). */
export async function runSoak(o: { durationMs: number; rate: number }): Promise<SoakResult> {
  const s = await ProdStack.start();
  const kinds: Record<Kind, KindTally> = { warm: tally(), cold: tally(), failing: tally(), timeout: tally() };
  const asyncIds = new Map<string, Kind>();
  let skipped = 0;
  let leaks: string[] = [];
  try {
    await deployAll(s);
    const inflight = new Set<Promise<void>>();
    const t0 = Date.now();
    for (let i = 0; Date.now() - t0 < o.durationMs; i++) {
      const due = t0 + (i * 1000) / o.rate;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      if (inflight.size >= MAX_INFLIGHT) { skipped++; continue; }
      const kind = MIX[i % MIX.length]!;
      kinds[kind].issued++;
      const p = send(s, kind, i, kinds[kind]).then((id) => { if (id) asyncIds.set(id, kind); }).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
    await settleAsync(s, asyncIds, kinds);
  } finally {
    leaks = await teardown(s);
  }
  const unaccounted = Object.values(kinds).reduce((a, k) => a + missing(k), 0);
  return { durationS: o.durationMs / 1000, rate: o.rate, kinds, skipped, leaks, ok: unaccounted === 0 && leaks.length === 0 };
}

/** Issued minus everything accounted for, per kind (what `ok` requires to be 0). */
export function missing(k: KindTally): number {
  return k.issued - k.succeeded - k.deadLettered - Object.values(k.failed).reduce((a, b) => a + b, 0);
}

async function main(): Promise<void> {
  const argv = process.argv;
  const at = (f: string) => { const i = argv.indexOf(f); return i < 0 ? undefined : argv[i + 1]; };
  const durationMs = parseDuration(at('--duration') ?? '10m');
  const rate = Number(at('--rate') ?? '10');
  if (!(rate > 0 && rate <= 500)) throw new Error('--rate: invocations per second, 1 to 500');
  const r = await runSoak({ durationMs, rate });
  const rows: Record<string, Row> = {};
  for (const [kind, k] of Object.entries(r.kinds)) {
    const p = percentiles(k.latenciesMs);
    rows[kind] = { issued: k.issued, succeeded: k.succeeded, failed: Object.entries(k.failed).map(([c, n]) => `${c}×${n}`).join(' ') || '-', dead_lettered: k.deadLettered, unaccounted: missing(k), p50_ms: p.p50_ms, p99_ms: p.p99_ms };
  }
  printResults(rows, {
    title: `soak: ${r.durationS} s at ${r.rate}/s`,
    notes: [`skipped (over ${MAX_INFLIGHT} in flight): ${r.skipped}`, r.leaks.length ? `LEAKS:\n${r.leaks.join('\n')}` : 'leaks: none (containers, mounts, cgroups, job locks, stuck jobs, function keys)', r.ok ? 'result: every invocation accounted for' : 'result: FAILED'],
  });
  if (wantsJson(argv)) console.log(JSON.stringify({ ...r, kinds: Object.fromEntries(Object.entries(r.kinds).map(([k, v]) => [k, { ...v, latenciesMs: undefined, ...percentiles(v.latenciesMs) }])) }));
  process.exitCode = r.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => { console.error(e); process.exit(2); });
}
