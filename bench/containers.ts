/**
 * Container benchmarks (npm run bench:containers [-- --reps N] [--json]):
 *   - `jiffy run --rm busybox true` end to end, the CLI process included (spawned per rep);
 *   - the same boot in-process through ContainerManager.run (what a worker pays);
 *   - commit of a container with a 1 MB and a 100 MB change;
 *   - boot from the committed (100 MB) image vs boot from its base image.
 * Runs in its own temp JIFFY_ROOT and removes it afterwards.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureRuntimeImage } from '../src/build/runtime-images.js';
import { ContainerManager } from '../src/containers/manager.js';
import { runtimeBinary } from '../src/containers/runtime.js';
import { ImageStore } from '../src/images/store.js';
import { repoRoot } from '../src/paths.js';
import { intFlag, msSince, percentiles, printResults, wantsJson, type Percentiles } from './lib/stats.js';

const reps = intFlag('reps', 30);
const json = wantsJson();
const log = (s: string) => process.stderr.write(`${s}\n`);

async function cliRuns(root: string): Promise<Percentiles> {
  const bin = path.join(repoRoot(), 'bin', 'jiffy');
  const samples: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(bin, ['run', '--rm', 'busybox', 'true'], { env: { ...process.env, JIFFY_ROOT: root }, stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = msSince(t0);
    if (r.status !== 0) throw new Error(`jiffy run failed (${r.status}): ${r.stderr}`);
    if (i >= 2) samples.push(ms); // two warm-up runs (page cache)
  }
  return percentiles(samples);
}

/** A CLI call that does almost no work: its time is node start-up plus module loading. */
async function cliStartup(root: string, args: string[]): Promise<Percentiles> {
  const bin = path.join(repoRoot(), 'bin', 'jiffy');
  const samples: number[] = [];
  for (let i = 0; i < Math.min(reps, 10); i++) {
    const t0 = process.hrtime.bigint();
    spawnSync(bin, args, { env: { ...process.env, JIFFY_ROOT: root }, stdio: 'ignore' });
    samples.push(msSince(t0));
  }
  return percentiles(samples);
}

async function nodeStartup(): Promise<Percentiles> {
  const samples: number[] = [];
  for (let i = 0; i < Math.min(reps, 10); i++) {
    const t0 = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    samples.push(msSince(t0));
  }
  return percentiles(samples);
}

async function inProcessRuns(mgr: ContainerManager, image: string, n: number): Promise<Percentiles> {
  const samples: number[] = [];
  for (let i = 0; i < n + 1; i++) {
    const t0 = process.hrtime.bigint();
    const { exit } = await mgr.run({ image, cmd: ['true'], autoRemove: true, stdio: ['ignore', 'ignore', 'ignore'] });
    const info = await exit;
    if (info.exitCode !== 0) throw new Error(`run of ${image} exited ${info.exitCode}`);
    if (i > 0) samples.push(msSince(t0));
  }
  return percentiles(samples);
}

async function commits(mgr: ContainerManager, mb: number, n: number): Promise<{ stats: Percentiles; ref: string }> {
  const samples: number[] = [];
  let ref = '';
  for (let i = 0; i < n; i++) {
    const { id, exit } = await mgr.run({ image: 'busybox', cmd: ['dd', 'if=/dev/urandom', 'of=/blob', 'bs=1M', `count=${mb}`] });
    if ((await exit).exitCode !== 0) throw new Error('writing the change failed');
    ref = `bench-commit-${mb}mb:${i}`;
    const t0 = process.hrtime.bigint();
    await mgr.commit(id, { ref, message: `${mb} MB change` });
    samples.push(msSince(t0));
    await mgr.remove(id);
  }
  return { stats: percentiles(samples), ref };
}

async function main(): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-bench-containers-'));
  try {
    const store = await ImageStore.open(root);
    await ensureRuntimeImage(store, 'busybox');
    const mgr = new ContainerManager({ store, warm: false });
    log(`runtime: ${runtimeBinary()}; reps: ${reps}`);
    const results: Record<string, Percentiles> = {};
    log('jiffy run --rm busybox true (CLI, end to end)…');
    results['cli: jiffy run --rm busybox true'] = await cliRuns(root);
    results['cli: jiffy --help (startup, every group)'] = await cliStartup(root, ['--help']);
    results['cli: jiffy ps -q (startup, containers group)'] = await cliStartup(root, ['ps', '-q']);
    results['node -e 0 (bare node start-up)'] = await nodeStartup();
    log('in-process runs…');
    results['in-process: run --rm busybox true'] = await inProcessRuns(mgr, 'busybox', reps);
    log('commits…');
    results['commit: 1 MB change'] = (await commits(mgr, 1, Math.max(5, Math.min(reps, 10)))).stats;
    const big = await commits(mgr, 100, 5);
    results['commit: 100 MB change'] = big.stats;
    log('boot from committed vs base image…');
    results['boot: base image (busybox)'] = await inProcessRuns(mgr, 'busybox', reps);
    results['boot: committed image (+100 MB layer)'] = await inProcessRuns(mgr, big.ref, reps);
    await mgr.close();
    printResults(results, {
      json,
      title: 'Containers',
      notes: [`runtime ${runtimeBinary()}; 2 warm-up CLI runs dropped; commit = freeze-free (stopped container) copy + layer tar + adopt.`],
    });
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
