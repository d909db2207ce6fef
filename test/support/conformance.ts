/**
 * Shared pieces of the launcher conformance suite (test/launcher-*.test.ts): one busybox rootfs
 * per test file, a bundle per case (config.json pointing at that rootfs), the probe, unique
 * container ids, and finders for resources a runtime could leave behind.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeBundle, makeBusyboxRootfs, probeBinary } from './bundle.js';
import { conformanceSpec, type ConformanceSpecOptions } from './oci-spec.js';
export { conformanceSpec };
import { after, before, describe } from 'node:test';
import { openRuntime, selectedRuntimes, type ConformanceRuntime, type RunOutcome } from './oci-runtimes.js';

/** A temp dir with one busybox rootfs (with the probe) and numbered bundles around it. */
export class ConformanceEnv {
  /** Every container id made here starts with this; leak checks grep for it. */
  readonly prefix = `jt${randomBytes(4).toString('hex')}`;
  private n = 0;
  private constructor(readonly dir: string, readonly rootfs: string) {}

  static async create(): Promise<ConformanceEnv> {
    if (!existsSync(probeBinary())) {
      throw new Error(`${probeBinary()} is missing: build it with \`make -C native build/jiffy-probe\``);
    }
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-conf-'));
    const rootfs = path.join(dir, 'rootfs');
    await makeBusyboxRootfs(rootfs);
    return new ConformanceEnv(dir, rootfs);
  }

  /** A fresh unique container id. */
  id(): string {
    return `${this.prefix}-${++this.n}`;
  }

  /** Write a bundle whose config is conformanceSpec(opts) (rootfs shared, absolute path). */
  async bundle(opts: ConformanceSpecOptions): Promise<string> {
    return this.rawBundle(conformanceSpec({ rootPath: this.rootfs, ...opts }));
  }

  /** Write a bundle with exactly this config (an object, or raw text for unparsable cases). */
  async rawBundle(config: object | string): Promise<string> {
    const b = path.join(this.dir, `bundle-${++this.n}`);
    if (typeof config === 'string') {
      await fs.mkdir(b, { recursive: true });
      await fs.writeFile(path.join(b, 'config.json'), config);
    } else {
      await makeBundle(b, config);
    }
    return b;
  }

  async cleanup(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

/** The probe's answer: the last JSON line on stdout. Throws with the runtime's output otherwise. */
export function probeAnswer(o: RunOutcome): Record<string, any> {
  const lines = o.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) {
    throw new Error(`probe printed no JSON (exit ${o.exitCode}, signal ${o.signal}); stdout=${JSON.stringify(o.stdout)} stderr=${JSON.stringify(o.stderr)}`);
  }
  return JSON.parse(lines[lines.length - 1]);
}

/** Run `/bin/probe ...question` in a fresh container and return the answer and outcome. */
export async function ask(
  rt: ConformanceRuntime,
  env: ConformanceEnv,
  question: string[],
  opts: Omit<ConformanceSpecOptions, 'args'> = {},
): Promise<{ answer: Record<string, any>; outcome: RunOutcome }> {
  const bundle = await env.bundle({ ...opts, args: ['/bin/probe', ...question] });
  const outcome = await rt.run(bundle, env.id());
  if (outcome.exitCode !== 0) {
    throw new Error(`${rt.name}: probe ${question.join(' ')} exited ${outcome.exitCode} (signal ${outcome.signal}): ${outcome.stderr}`);
  }
  return { answer: probeAnswer(outcome), outcome };
}

/** Directories under /sys/fs/cgroup (every hierarchy, a few levels deep) whose name contains `needle`. */
export async function cgroupsMatching(needle: string, maxDepth = 5): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > maxDepth) return;
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return; // a cgroup removed while we walk
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name.includes(needle)) found.push(p);
      await walk(p, depth + 1);
    }
  };
  await walk('/sys/fs/cgroup', 0);
  return found;
}

/** Lines of the host's /proc/self/mountinfo that mention `needle`. */
export async function mountsMatching(needle: string): Promise<string[]> {
  const mi = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return mi.split('\n').filter((l) => l.includes(needle));
}

/** Pids of live processes whose environment contains `marker` (e.g. "JIFFY_LEAK=<prefix>"). */
export async function processesWithEnv(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = await fs.readFile(`/proc/${name}/environ`, 'latin1');
      if (env.split('\0').includes(marker)) pids.push(Number(name));
    } catch {
      // exited while we looked, or a kernel thread
    }
  }
  return pids;
}

/** Exit status a CLI runtime reports for a death by `signal` (128 + N). */
export function cliSignalStatus(signal: string): number {
  const n = os.constants.signals[signal as keyof typeof os.constants.signals];
  if (n === undefined) throw new Error(`unknown signal ${signal}`);
  return 128 + n;
}

/**
 * Read a cgroup file of process `pid` as the host sees it: v1 controller `ctrl` first
 * (hybrid and v1 hosts), else the unified hierarchy (`v2file`).
 */
export async function cgroupFileOf(pid: number, ctrl: string, v1file: string, v2file: string): Promise<string> {
  const lines = (await fs.readFile(`/proc/${pid}/cgroup`, 'utf8')).trim().split('\n');
  const v1 = lines.map((l) => l.split(':')).find(([, c]) => c.split(',').includes(ctrl));
  if (v1 && existsSync(path.join('/sys/fs/cgroup', ctrl))) {
    return (await fs.readFile(path.join('/sys/fs/cgroup', ctrl, v1[2], v1file), 'utf8')).trim();
  }
  const v2 = lines.map((l) => l.split(':')).find(([h]) => h === '0');
  if (!v2) throw new Error(`process ${pid} has no ${ctrl} cgroup: ${lines.join('; ')}`);
  const base = existsSync('/sys/fs/cgroup/unified') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
  return (await fs.readFile(path.join(base, v2[2], v2file), 'utf8')).trim();
}

/**
 * Poll `find` until it returns nothing, for at most `graceMs` (a hang guard, not a timing
 * assertion): jiffy-serve reports a container's exit first and removes its cgroup right after,
 * off the boot/exit path. Returns what is still there when the grace runs out.
 */
export async function eventuallyNone<T>(find: () => Promise<T[]>, graceMs = 5000): Promise<T[]> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const left = await find();
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Grace for {@link eventuallyNone}: CLIs clean up before they exit, the fork-server just after. */
export function cleanupGraceMs(rt: { kind: 'cli' | 'binding' }): number {
  return rt.kind === 'binding' ? 5000 : 0;
}

/** What each conformance test reads: the runtime under test and its bundle environment. */
export interface ConformanceContext {
  readonly name: string;
  readonly rt: ConformanceRuntime;
  readonly env: ConformanceEnv;
}

/**
 * One `describe` per selected runtime (`title [runtime]`), with a fresh ConformanceEnv and the
 * runtime opened before its tests and both closed after, so every suite file states only its cases.
 */
export function describeEachRuntime(title: string, body: (c: ConformanceContext) => void): void {
  for (const name of selectedRuntimes()) {
    describe(`${title} [${name}]`, () => {
      const c = { name } as { name: string; rt: ConformanceRuntime; env: ConformanceEnv };
      before(async () => {
        c.env = await ConformanceEnv.create();
        c.rt = await openRuntime(name);
      });
      after(async () => {
        await c.rt?.close();
        await c.env?.cleanup();
      });
      body(c);
    });
  }
}
