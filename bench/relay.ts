/**
 * node dist/bench/relay.js [--containers 16] [--inflight 1] [--rounds 300] [--bytes 200] [--churn] [--json]
 *
 * Latency of the fork-server's stdio relay, the path a warm function instance is spoken to over:
 * N `cat` containers (busybox bundle, full namespace set, memory limit) run at once, and each does
 * a ping-pong: write one line of --bytes bytes to its stdin, wait until the same bytes came back
 * on its stdout, repeat --rounds times. Every round trip is one sample. The same ping-pong against
 * --inflight K runs K such loops per container at once (several invocations queued on one warm
 * instance). The same ping-pong against N plain `busybox cat` children over direct pipes (what the CLI spawner does) is the floor.
 * --churn adds a background loop that boots a `/bin/true` container through the same server every
 * ~5 ms while the ping-pong runs (instances starting and exiting around warm ones).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { Launcher, type OciRuntimeSpec } from '../src/launcher/index.js';
import { BUSYBOX, makeBusyboxRootfs, makeBundle } from '../test/support/bundle.js';
import { conformanceSpec } from '../test/support/oci-spec.js';
import { intFlag, percentiles, printResults, wantsJson, type Percentiles } from './lib/stats.js';

interface Opts {
  n: number;
  rounds: number;
  bytes: number;
  inflight: number;
  churn: boolean;
}

interface Pipe {
  stdin: Writable;
  stdout: Readable;
}

/**
 * `inflight` ping-pong loops over one process (cat echoes in order, every line has the same
 * size, so the k-th line back answers the k-th line sent); returns round-trip times in ms.
 */
async function pingPong(p: Pipe, rounds: number, bytes: number, inflight: number): Promise<number[]> {
  const line = Buffer.alloc(bytes, 'x');
  line[bytes - 1] = 0x0a;
  const samples: number[] = [];
  const waiting: (() => void)[] = [];
  let got = 0;
  p.stdout.on('data', (c: Buffer) => {
    got += c.length;
    while (got >= bytes && waiting.length) {
      got -= bytes;
      waiting.shift()!();
    }
  });
  const loop = async (): Promise<void> => {
    for (let i = 0; i < rounds; i++) {
      const t0 = process.hrtime.bigint();
      const back = new Promise<void>((resolve) => waiting.push(resolve));
      p.stdin.write(line);
      await back;
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: inflight }, loop));
  return samples;
}

async function all(pipes: Pipe[], o: Opts): Promise<number[]> {
  const per = await Promise.all(pipes.map((p) => pingPong(p, o.rounds, o.bytes, o.inflight)));
  return per.flat();
}

async function direct(o: Opts): Promise<number[]> {
  const kids = Array.from({ length: o.n }, () => spawn(BUSYBOX, ['cat'], { stdio: ['pipe', 'pipe', 'inherit'] }));
  try {
    return await all(kids.map((k) => ({ stdin: k.stdin!, stdout: k.stdout! })), o);
  } finally {
    for (const k of kids) k.stdin!.end();
    await Promise.all(kids.map((k) => new Promise((r) => k.once('exit', r))));
  }
}

const CHURN_EVERY_MS = 5;

/** Boots /bin/true over and over until `stop` is set; returns how many it booted. */
async function churn(l: Launcher, config: OciRuntimeSpec, bundle: string, tag: string, stop: { v: boolean }): Promise<number> {
  let i = 0;
  while (!stop.v) {
    const h = await l.boot({ id: `${tag}-churn-${i++}`, config, bundle, stdin: 'null', stdout: 'null', stderr: 'null' });
    await h.wait();
    // A steady rate, not as fast as possible: a faster server must not be charged more boots.
    await new Promise((r) => setTimeout(r, CHURN_EVERY_MS));
  }
  return i;
}

async function served(bundle: string, scratch: string, o: Opts): Promise<{ samples: number[]; churned: number }> {
  const catCfg = <OciRuntimeSpec>conformanceSpec({ args: ['cat'], rootPath: 'rootfs', memoryBytes: 64 << 20, hostname: 'relay', readonlyRoot: true });
  const trueCfg = <OciRuntimeSpec>conformanceSpec({ args: ['/bin/true'], rootPath: 'rootfs', memoryBytes: 64 << 20, hostname: 'relay', readonlyRoot: true });
  const l = await Launcher.start({ stateRoot: path.join(scratch, 'serve-state') });
  const tag = `jr${process.pid.toString(36)}${o.churn ? 'c' : ''}`;
  try {
    const hs = [];
    for (let i = 0; i < o.n; i++) hs.push(await l.boot({ id: `${tag}-${i}`, config: catCfg, bundle, stderr: 'null' }));
    const stop = { v: false };
    const churner = o.churn ? churn(l, trueCfg, bundle, tag, stop) : Promise.resolve(0);
    const samples = await all(hs.map((h) => ({ stdin: h.stdin!, stdout: h.stdout! })), o);
    stop.v = true;
    const churned = await churner;
    for (const h of hs) h.stdin!.end();
    await Promise.all(hs.map((h) => h.wait()));
    return { samples, churned };
  } finally {
    await l.close();
  }
}

async function main(): Promise<void> {
  const base: Opts = {
    n: intFlag('containers', 16),
    rounds: intFlag('rounds', 300),
    bytes: intFlag('bytes', 200),
    inflight: intFlag('inflight', 1),
    churn: false,
  };
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-bench-relay-'));
  try {
    const bundle = path.join(scratch, 'bundle');
    await makeBusyboxRootfs(path.join(bundle, 'rootfs'));
    await makeBundle(bundle, {});
    const results: Record<string, Percentiles> = {};
    const notes: string[] = [];
    results['direct-pipes'] = percentiles(await direct(base));
    results['jiffy-serve'] = percentiles((await served(bundle, scratch, base)).samples);
    if (process.argv.includes('--churn')) {
      const r = await served(bundle, scratch, { ...base, churn: true });
      results['jiffy-serve+churn'] = percentiles(r.samples);
      notes.push(`jiffy-serve+churn: ${r.churned} /bin/true containers booted and exited during the ping-pong.`);
    }
    printResults(results, {
      json: wantsJson(),
      notes,
      title: `stdio round trip: ${base.n} cat containers × ${base.inflight} in flight, ${base.rounds} rounds of ${base.bytes} bytes (ms)`,
    });
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
