/**
 * npm run bench:boot [-- --iterations N] [--runtimes a,b] [--json]
 *
 * Boots /bin/true from ONE busybox OCI bundle (namespaces pid, mount, uts, ipc, network, cgroup;
 * a 64 MiB memory limit) N times under each runtime, interleaved round-robin so drift hits all
 * alike: jiffy-serve (fork-server via the binding), jiffy-run (CLI), crun, runc, bwrap
 * (--unshare-all, no cgroup limit: it has none) and a plain fork+exec of /bin/true as the floor.
 * See bench/lib/boot-runners.ts for exactly what is timed. Each boot uses a unique container id.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { OciRuntimeSpec } from '../src/launcher/index.js';
import { makeBusyboxRootfs, makeBundle } from '../test/support/bundle.js';
import { conformanceSpec } from '../test/support/oci-spec.js';
import { crunRunner, hostRunners, serveRunner, type BootEnv, type BootRunner } from './lib/boot-runners.js';
import { intFlag, percentiles, printResults, wantsJson, type Percentiles, type Row } from './lib/stats.js';

const ALL = ['jiffy-serve', 'jiffy-run', 'crun', 'runc', 'bwrap', 'fork-exec'];
const WARMUP = 5;

function runtimesFlag(argv: string[]): string[] {
  const i = argv.indexOf('--runtimes');
  if (i < 0) return ALL;
  const names = (argv[i + 1] ?? '').split(',').filter(Boolean);
  const bad = names.filter((n) => !ALL.includes(n));
  if (names.length === 0 || bad.length) throw new Error(`--runtimes takes a comma list of ${ALL.join(', ')}; got ${argv[i + 1]}`);
  return names;
}

async function makeEnv(): Promise<{ env: BootEnv; config: OciRuntimeSpec }> {
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-bench-boot-'));
  const bundle = path.join(scratch, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  await makeBusyboxRootfs(rootfs);
  const config = <OciRuntimeSpec>conformanceSpec({ args: ['/bin/true'], rootPath: 'rootfs', memoryBytes: 64 << 20, hostname: 'bench' });
  await makeBundle(bundle, config);
  return { env: { bundle, rootfs, scratch }, config };
}

async function openRunners(names: string[], env: BootEnv, config: OciRuntimeSpec): Promise<BootRunner[]> {
  const runners: BootRunner[] = [];
  try {
    if (names.includes('jiffy-serve')) runners.push(await serveRunner(env, config));
    runners.push(...(await hostRunners(names, env)));
    if (names.includes('crun')) runners.push(await crunRunner(env));
  } catch (e) {
    for (const r of runners) await r.close().catch(() => undefined);
    throw e;
  }
  return names.map((n) => runners.find((r) => r.name === n)!);
}

/** Round-robin: every iteration boots once under each runtime. */
async function measure(runners: BootRunner[], iterations: number): Promise<Map<string, number[]>> {
  const samples = new Map(runners.map((r) => [r.name, [] as number[]]));
  const tag = `jb${process.pid.toString(36)}`;
  for (let i = -WARMUP; i < iterations; i++) {
    for (const r of runners) {
      const ms = await r.boot(`${tag}-${r.name}-${i + WARMUP}`);
      if (i >= 0) samples.get(r.name)!.push(ms);
    }
    if (i > 0 && i % 50 === 0) process.stderr.write(`bench:boot ${i}/${iterations} rounds\n`);
  }
  return samples;
}

function report(samples: Map<string, number[]>, json: boolean, iterations: number): void {
  const stats: Record<string, Percentiles> = {};
  for (const [name, s] of samples) stats[name] = percentiles(s);
  const crun = stats.crun?.p50_ms;
  const rows: Record<string, Row> = {};
  for (const [name, p] of Object.entries(stats)) {
    rows[name] = { ...p, 'p50 vs crun': crun ? `${(p.p50_ms / crun).toFixed(2)}×` : '' };
  }
  const notes = [
    `${iterations} boots per runtime of /bin/true, interleaved round-robin; times in ms (wall, per boot).`,
    'CLI rows (jiffy-run, crun, runc, bwrap, fork-exec): one `<runtime> run --bundle B ID` from bash fork to exit, ' +
      'timed with $EPOCHREALTIME in a long-lived driver (crun\'s driver sits in an `unshare -m` with cgroup2 unmounted, ' +
      'done once, untimed); the fork-exec row is that driver overhead plus /bin/true. ' +
      'jiffy-serve: Launcher.boot() to wait() resolving, in Node. bwrap applies no memory limit (it has none).',
  ];
  if (stats['jiffy-serve']) notes.push(`target jiffy-serve p50 ≤ 1 ms: ${stats['jiffy-serve'].p50_ms} ms`);
  if (stats['jiffy-run'] && crun) notes.push(`target jiffy-run p50 ≤ 0.35× crun: ${(stats['jiffy-run'].p50_ms / crun).toFixed(2)}×`);
  printResults(rows, { title: 'boot /bin/true (busybox bundle, full namespace set, memory limit)', notes });
  if (json) console.log(JSON.stringify(stats));
}

async function main(): Promise<void> {
  const iterations = intFlag('iterations', 200);
  const names = runtimesFlag(process.argv);
  const { env, config } = await makeEnv();
  let runners: BootRunner[] = [];
  try {
    runners = await openRunners(names, env, config);
    report(await measure(runners, iterations), wantsJson(), iterations);
  } finally {
    for (const r of runners) await r.close().catch(() => undefined);
    await fs.rm(env.scratch, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench:boot failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
