/**
 * The runtimes the launcher conformance suite runs against, behind one small interface:
 *   jiffy-cli    native/build/jiffy-launch as an OCI runtime CLI (run/create/start/state/kill/delete)
 *   jiffy-serve  the fork-server, driven through the TypeScript binding (src/launcher)
 *   runc, crun   the reference runtimes, for comparing behaviour (opt-in)
 * JIFFY_CONFORMANCE_RUNTIMES (comma separated) picks them; default "jiffy-cli,jiffy-serve".
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ExitStatus, OciRuntimeSpec } from '../../src/launcher/index.js';
import { launcherBinary } from '../../src/paths.js';

/** How a container ended. CLIs report 128+N for a death by signal N; the binding reports the signal. */
export interface RunOutcome {
  exitCode: number | null;
  signal: string | null;
  oomKilled?: boolean;
  /** The binding's full exit status (peak memory, cpu and wall time). */
  status?: ExitStatus;
  stdout: string;
  stderr: string;
}

/** A container started in the background: kill it, then wait for its outcome. */
export interface Running {
  /** Host pid of the container's first process. */
  pid: number;
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
  cli?(args: string[], opts?: { detach?: boolean }): Promise<CliResult>;
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

/**
 * Spawn one CLI call. With `detach` (create), the container inherits the runtime's stdio and
 * outlives the call, so pipes would never close: stdout goes to /dev/null, stderr to a temp
 * file read back on exit.
 */
function spawnCli(name: string, bin: string, args: string[], detach = false): Spawned {
  const [cmd, argv] = cliCommand(name, bin, args);
  const errFile = detach ? path.join(os.tmpdir(), `jiffy-conf-err-${process.pid}-${Math.random().toString(36).slice(2)}`) : '';
  const errFd = detach ? openSync(errFile, 'w') : -1;
  const child = spawn(cmd, argv, { stdio: detach ? ['ignore', 'ignore', errFd] : ['ignore', 'pipe', 'pipe'] });
  if (detach) closeSync(errFd);
  const so = collect(child.stdout);
  const se = collect(child.stderr);
  const done = new Promise<CliResult>((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} ${args.join(' ')}: no exit after ${HANG_MS} ms`));
    }, HANG_MS);
    child.on('error', (e) => { clearTimeout(t); reject(e); });
    child.on(detach ? 'exit' : 'close', async (code, sig) => {
      clearTimeout(t);
      const stderr = detach ? await fs.readFile(errFile, 'utf8').finally(() => fs.rm(errFile, { force: true })) : await se;
      resolve({ code: code ?? (sig ? 128 + (os.constants.signals[sig as NodeJS.Signals] ?? 0) : null), stdout: await so, stderr });
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
  const ids = new Set<string>(); // every id we created, force-deleted on close
  const call = (args: string[], detach = false) => spawnCli(name, bin, [...base, ...args], detach);
  const rt: ConformanceRuntime = {
    name,
    kind: 'cli',
    stateRoot,
    cli: (args, opts) => {
      if (args[0] === 'create' || args[0] === 'run') ids.add(args[args.length - 1]);
      return call(args, opts?.detach ?? args[0] === 'create').done;
    },
    run: async (bundle, id) => (ids.add(id), toOutcome(await call(['run', '--bundle', bundle, id]).done)),
    start: async (bundle, id) => {
      ids.add(id);
      const s = call(['run', '--bundle', bundle, id]);
      const st = await Promise.race([waitForState(rt, id, 'running'), s.done.then((r): never => {
        throw new Error(`${name} run ${id} ended before it was running (${r.code}): ${r.stderr}`);
      })]);
      return {
        pid: st.pid,
        kill: async (sig) => {
          const r = await call(['kill', id, sig]).done;
          if (r.code !== 0) throw new Error(`${name} kill ${id} ${sig} failed (${r.code}): ${r.stderr}`);
        },
        wait: async () => toOutcome(await s.done),
      };
    },
    close: async () => {
      for (const id of ids) await call(['delete', '--force', id]).done.catch(() => undefined);
      await fs.rm(stateRoot, { recursive: true, force: true });
    },
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

/** The bundle's config.json; for a missing or unparsable one, a clear error like a CLI's. */
async function readConfig(bundle: string): Promise<unknown> {
  const file = path.join(bundle, 'config.json');
  const text = await fs.readFile(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

async function serveRuntime(): Promise<ConformanceRuntime> {
  const { Launcher } = await import('../../src/launcher/index.js');
  const stateRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-conf-serve-'));
  const l = await Launcher.start({ stateRoot });
  const boot = async (bundle: string, id: string) => {
    const config = (await readConfig(bundle)) as unknown as OciRuntimeSpec;
    const h = await l.boot({ id, config, bundle, stdin: 'null' });
    const so = collect(h.stdout);
    const se = collect(h.stderr);
    const wait = async (): Promise<RunOutcome> => {
      const st = await h.wait();
      return { exitCode: st.exitCode, signal: st.signal ?? null, oomKilled: st.oomKilled, status: st, stdout: await so, stderr: await se };
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
      return { pid: h.pid, kill: (sig) => h.kill(sig as NodeJS.Signals), wait };
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
