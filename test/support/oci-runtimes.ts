/**
 * The runtimes the launcher conformance suite runs against, behind one small interface:
 *   jiffy-cli    native/build/jiffy-launch as an OCI runtime CLI (run/create/start/state/kill/delete)
 *   jiffy-serve  the fork-server, driven through the TypeScript binding (src/launcher)
 *   runc, crun   the reference runtimes, for comparing behaviour (opt-in)
 * JIFFY_CONFORMANCE_RUNTIMES (comma separated) picks them; default "jiffy-cli,jiffy-serve".
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { launcherBinary } from '../../src/paths.js';

/** How a container ended. CLIs report 128+N for a death by signal N; the binding reports the signal. */
export interface RunOutcome {
  exitCode: number | null;
  signal: string | null;
  oomKilled?: boolean;
  stdout: string;
  stderr: string;
}

/** A container started in the background: kill it, then wait for its outcome. */
export interface Running {
  kill(signal: string): Promise<void>;
  wait(): Promise<RunOutcome>;
}

/** Result of one runtime CLI invocation (create, state, delete…). */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ConformanceRuntime {
  name: string;
  kind: 'cli' | 'binding';
  /** Directory holding this runtime's container state (the CLI's --root). */
  stateRoot: string;
  /** Run the bundle's config to completion. */
  run(bundle: string, id: string): Promise<RunOutcome>;
  /** Start the bundle's config and return without waiting for it. */
  start(bundle: string, id: string): Promise<Running>;
  /** CLI runtimes only: run `<runtime> --root stateRoot ...args`. */
  cli?(args: string[], opts?: { stdoutFile?: string }): Promise<CliResult>;
  close(): Promise<void>;
}

/** Hang guard for one runtime call; a hung call is a failure, not a timing measurement. */
const HANG_MS = 60_000;

/** Names picked by JIFFY_CONFORMANCE_RUNTIMES. */
export function selectedRuntimes(): string[] {
  const v = process.env.JIFFY_CONFORMANCE_RUNTIMES || 'jiffy-cli,jiffy-serve';
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Collect a readable stream into a string. */
export function collect(stream: Readable | null | undefined): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    stream.on('error', reject);
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** argv for one CLI call; crun is wrapped for this hybrid-cgroup host (see cliCommand). */
function cliCommand(name: string, bin: string, args: string[]): [string, string[]] {
  if (name !== 'crun') return [bin, args];
  // crun refuses hybrid hosts whose cgroup2 mount has no controllers: hide that mount
  // in a private mount namespace first.
  return ['unshare', ['-m', 'sh', '-c', 'umount /sys/fs/cgroup/unified && exec crun "$@"', 'crun', ...args]];
}

interface Spawned {
  child: ReturnType<typeof spawn>;
  done: Promise<CliResult>;
}

function spawnCli(name: string, bin: string, args: string[], stdoutFile?: string): Spawned {
  const [cmd, argv] = cliCommand(name, bin, args);
  const out = stdoutFile ? 'ignore' : 'pipe';
  const child = spawn(cmd, argv, { stdio: ['ignore', out, 'pipe'] });
  const so = collect(child.stdout);
  const se = collect(child.stderr);
  const done = new Promise<CliResult>((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} ${args.join(' ')}: no exit after ${HANG_MS} ms`));
    }, HANG_MS);
    child.on('error', (e) => { clearTimeout(t); reject(e); });
    child.on('close', async (code, sig) => {
      clearTimeout(t);
      resolve({ code: code ?? (sig ? 128 + (os.constants.signals[sig] ?? 0) : null), stdout: await so, stderr: await se });
    });
  });
  return { child, done };
}

function toOutcome(r: CliResult): RunOutcome {
  return { exitCode: r.code, signal: null, stdout: r.stdout, stderr: r.stderr };
}

async function cliRuntime(name: string, bin: string): Promise<ConformanceRuntime> {
  const stateRoot = await fs.mkdtemp(path.join(os.tmpdir(), `jiffy-conf-${name}-`));
  const base = ['--root', stateRoot];
  const rt: ConformanceRuntime = {
    name,
    kind: 'cli',
    stateRoot,
    cli: (args, opts) => spawnCli(name, bin, [...base, ...args], opts?.stdoutFile).done,
    run: async (bundle, id) => toOutcome(await spawnCli(name, bin, [...base, 'run', '--bundle', bundle, id]).done),
    start: async (bundle, id) => {
      const s = spawnCli(name, bin, [...base, 'run', '--bundle', bundle, id]);
      await waitForState(rt, id, 'running');
      return {
        kill: async (sig) => {
          const r = await rt.cli!(['kill', id, sig]);
          if (r.code !== 0) throw new Error(`${name} kill ${id} ${sig} failed (${r.code}): ${r.stderr}`);
        },
        wait: async () => toOutcome(await s.done),
      };
    },
    close: () => fs.rm(stateRoot, { recursive: true, force: true }),
  };
  return rt;
}

/** Poll `state ID` until its status is `want` (hang-guarded). */
export async function waitForState(rt: ConformanceRuntime, id: string, want: string): Promise<Record<string, any>> {
  const deadline = Date.now() + HANG_MS;
  let last = '';
  while (Date.now() < deadline) {
    const r = await rt.cli!(['state', id]);
    last = `${r.code} ${r.stdout}${r.stderr}`;
    if (r.code === 0) {
      const st = JSON.parse(r.stdout);
      if (st.status === want) return st;
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`${rt.name}: container ${id} never reached state ${want}; last state call: ${last}`);
}

async function readConfig(bundle: string): Promise<Record<string, any>> {
  return JSON.parse(await fs.readFile(path.join(bundle, 'config.json'), 'utf8'));
}

async function serveRuntime(): Promise<ConformanceRuntime> {
  const { Launcher } = await import('../../src/launcher/index.js');
  const stateRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-conf-serve-'));
  const l = await Launcher.start();
  const boot = async (bundle: string, id: string) => {
    const h = await l.boot({ id, config: (await readConfig(bundle)) as any, bundle });
    const so = collect(h.stdout);
    const se = collect(h.stderr);
    const wait = async (): Promise<RunOutcome> => {
      const st = await h.wait();
      return { exitCode: st.exitCode, signal: st.signal ?? null, oomKilled: st.oomKilled, stdout: await so, stderr: await se };
    };
    return { h, wait };
  };
  return {
    name: 'jiffy-serve',
    kind: 'binding',
    stateRoot,
    run: async (bundle, id) => (await boot(bundle, id)).wait(),
    start: async (bundle, id) => {
      const { h, wait } = await boot(bundle, id);
      return { kill: async (sig) => { await h.kill(sig as any); }, wait };
    },
    close: async () => {
      await l.close();
      await fs.rm(stateRoot, { recursive: true, force: true });
    },
  };
}

function requireBinary(bin: string, hint: string): string {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: ${hint}`);
  return bin;
}

/** Open one runtime by name; throws (loudly) when its binary is missing. */
export async function openRuntime(name: string): Promise<ConformanceRuntime> {
  switch (name) {
    case 'jiffy-cli':
      return cliRuntime(name, requireBinary(launcherBinary(), 'build it with `make -C native`'));
    case 'jiffy-serve':
      requireBinary(launcherBinary(), 'build it with `make -C native`');
      return serveRuntime();
    case 'runc':
      return cliRuntime(name, requireBinary('/usr/sbin/runc', 'apt-get install runc'));
    case 'crun':
      return cliRuntime(name, requireBinary('/usr/bin/crun', 'apt-get install crun'));
    default:
      throw new Error(`unknown runtime ${name} in JIFFY_CONFORMANCE_RUNTIMES (jiffy-cli, jiffy-serve, runc, crun)`);
  }
}
