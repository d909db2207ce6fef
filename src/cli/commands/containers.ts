/**
 * Container verbs. Start-up matters here (`jiffy run --rm IMAGE true` is a whole process per
 * container), so only commander types and small helpers load at registration; each action
 * imports what it needs (the manager, the image store, log and format helpers) when it runs.
 */
import type { Command } from 'commander';
import path from 'node:path';
import { JiffyError } from '../../errors.js';
import { defaultRoot } from '../../paths.js';
import type { ContainerManager } from '../../containers/manager.js';
import type { BindMount, CreateOptions } from '../../containers/types.js';

const collect = (v: string, prev: string[]) => [...prev, v];
const format = () => import('../../containers/format.js');
const logs = () => import('../../containers/logs.js');

async function manager(): Promise<ContainerManager> {
  const [{ ContainerManager }, { ImageStore }] = await Promise.all([import('../../containers/manager.js'), import('../../images/store.js')]);
  // A CLI call lives for one command: warm mounts would only cost time here.
  return new ContainerManager({ store: await ImageStore.open(defaultRoot()), warm: false });
}

interface CreateFlags {
  name?: string; env: string[]; memory?: string; cpus?: string; pidsLimit?: string; network?: string;
  volume: string[]; rm?: boolean; workdir?: string; user?: string; entrypoint?: string; readOnly?: boolean;
  hostname?: string; logMaxBytes?: string;
}

function parseVolume(spec: string): BindMount {
  const [source, destination, mode, ...extra] = spec.split(':');
  if (!source || !destination || extra.length || (mode && mode !== 'ro' && mode !== 'rw')) {
    throw new JiffyError('invalid_argument', `invalid volume ${JSON.stringify(spec)}: use HOST:CONTAINER[:ro]`);
  }
  if (!destination.startsWith('/')) throw new JiffyError('invalid_argument', `volume destination ${destination} must be an absolute path`);
  return { source: path.resolve(source), destination, readonly: mode === 'ro' };
}

function positive(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new JiffyError('invalid_argument', `${flag} needs a positive number, got ${JSON.stringify(v)}`);
  return n;
}

async function createOptions(image: string, cmd: string[], f: CreateFlags): Promise<CreateOptions> {
  if (f.network && f.network !== 'none' && f.network !== 'host') {
    throw new JiffyError('invalid_argument', `--network ${f.network} is not supported: use none or host`);
  }
  return {
    image,
    cmd: cmd.length ? cmd : undefined,
    name: f.name,
    env: f.env,
    memoryBytes: f.memory ? (await format()).parseBytes(f.memory) : undefined,
    cpus: positive(f.cpus, '--cpus'),
    pidsLimit: positive(f.pidsLimit, '--pids-limit'),
    network: (f.network as 'none' | 'host' | undefined) ?? 'none',
    binds: f.volume.map(parseVolume),
    autoRemove: !!f.rm,
    workdir: f.workdir,
    user: f.user,
    entrypoint: f.entrypoint !== undefined ? (f.entrypoint ? [f.entrypoint] : []) : undefined,
    readonlyRoot: !!f.readOnly,
    hostname: f.hostname,
    logMaxBytes: positive(f.logMaxBytes, '--log-max-bytes'),
  };
}

function createFlags(cmd: Command): Command {
  return cmd
    .argument('<image>')
    .argument('[command...]')
    .option('--name <name>', 'assign a name to the container')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [])
    .option('-m, --memory <size>', 'memory limit (e.g. 16m, 1g)')
    .option('--cpus <n>', 'number of CPUs')
    .option('--pids-limit <n>', 'maximum number of processes')
    .option('--network <mode>', 'none (default) or host')
    .option('-v, --volume <HOST:CTR[:ro]>', 'bind mount a host path (repeatable)', collect, [])
    .option('--rm', 'remove the container when it exits')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user>', 'user name or uid[:gid]')
    .option('--entrypoint <cmd>', 'override the image ENTRYPOINT ("" clears it)')
    .option('--read-only', 'mount the rootfs read-only (shared with other read-only containers)')
    .option('--hostname <name>', 'container hostname')
    .option('--log-max-bytes <n>', 'rotate the container log at this size')
    .passThroughOptions();
}

/** Container verbs, docker-style: run, create, start, stop, kill, restart, rm, ps, logs, top, diff, cp, exec, commit, pause, unpause, wait, container inspect. */
export function register(program: Command): void {
  // `jiffy run IMAGE sh -c …`: options after the image belong to the command, not to us.
  program.enablePositionalOptions();
  registerRun(program);
  registerLifecycle(program);
  registerInspection(program);
  registerChanges(program);
}

function registerRun(program: Command): void {
  createFlags(program.command('run').description('create and start a container'))
    .option('-d, --detach', 'run in the background and print the container id')
    .option('-i, --interactive', 'keep stdin open')
    .action(async (image: string, cmd: string[], f: CreateFlags & { detach?: boolean; interactive?: boolean }) => runCmd(image, cmd, f));

  createFlags(program.command('create').description('create a container without starting it'))
    .action(async (image: string, cmd: string[], f: CreateFlags) => console.log((await (await manager()).create(await createOptions(image, cmd, f))).id));

  program.command('start').description('start stopped or created containers').argument('<container...>')
    .option('-a, --attach', 'wait for the container and print its output')
    .action(async (names: string[], o: { attach?: boolean }) => startCmd(names, !!o.attach));
}

function registerLifecycle(program: Command): void {
  program.command('stop').description('stop running containers (SIGTERM, then SIGKILL after the grace period)').argument('<container...>')
    .option('-t, --time <secs>', 'seconds to wait before killing', '10')
    .action(async (names: string[], o: { time: string }) => eachName(names, (m, n) => m.stop(n, { timeoutSec: Number(o.time) })));

  program.command('restart').description('restart containers').argument('<container...>')
    .option('-t, --time <secs>', 'seconds to wait before killing', '10')
    .action(async (names: string[], o: { time: string }) => eachName(names, (m, n) => m.restart(n, { timeoutSec: Number(o.time) })));

  program.command('kill').description('send a signal (default KILL) to containers').argument('<container...>')
    .option('-s, --signal <sig>', 'signal to send', 'KILL')
    .action(async (names: string[], o: { signal: string }) => eachName(names, (m, n) => m.kill(n, o.signal)));

  program.command('rm').description('remove containers').argument('<container...>')
    .option('-f, --force', 'kill a running container first')
    .action(async (names: string[], o: { force?: boolean }) => eachName(names, (m, n) => m.remove(n, { force: o.force })));

  program.command('pause').description('freeze the processes of containers').argument('<container...>')
    .action(async (names: string[]) => eachName(names, (m, n) => m.pause(n)));
  program.command('unpause').description('thaw paused containers').argument('<container...>')
    .action(async (names: string[]) => eachName(names, (m, n) => m.unpause(n)));

  program.command('wait').description('wait for containers to exit and print their exit codes').argument('<container...>')
    .action(async (names: string[]) => {
      const m = await manager();
      for (const n of names) console.log((await m.wait(n)).exitCode);
    });
}

function registerInspection(program: Command): void {
  program.command('ps').description('list containers')
    .option('-a, --all', 'show all containers (default: running only)')
    .option('-q, --quiet', 'only ids')
    .option('--format <fmt>', '"table" (default) or "json"')
    .action(async (o: { all?: boolean; quiet?: boolean; format?: string }) => psCmd(o));

  program.command('logs').description('print the logs of a container').argument('<container>')
    .option('-f, --follow', 'follow the log output')
    .option('--tail <n>', 'only the last N lines')
    .action(async (name: string, o: { follow?: boolean; tail?: string }) => logsCmd(name, o));

  program.command('top').description('list the processes of a running container').argument('<container>')
    .action(async (name: string) => {
      const procs = await (await manager()).top(name);
      const { formatTable } = await format();
      console.log(formatTable([['PID', 'UID', 'CMD'], ...procs.map((p) => [String(p.pid), String(p.uid), p.cmd])]));
    });

  program.command('diff').description('list changed files in a container\'s rootfs (A added, C changed, D deleted)').argument('<container>')
    .action(async (name: string) => {
      const { formatChanges } = await import('../../snapshots/diff.js');
      const text = formatChanges(await (await manager()).diff(name));
      if (text) console.log(text);
    });

  const container = program.command('container').description('manage containers (container inspect, container ls)');
  container.command('inspect').description('show low-level information on containers as JSON').argument('<container...>')
    .action(async (names: string[]) => {
      const m = await manager();
      const out = [];
      for (const n of names) out.push(await m.get(n));
      console.log(JSON.stringify(out, null, 2));
    });
  container.command('ls').description('list containers').option('-a, --all', 'show all containers')
    .option('--format <fmt>', '"table" (default) or "json"').option('-q, --quiet', 'only ids')
    .action(async (o: { all?: boolean; quiet?: boolean; format?: string }) => psCmd(o));
}

function registerChanges(program: Command): void {
  program.command('cp').description('copy files between a container and the host (CTR:/path HOST or HOST CTR:/path)')
    .argument('<src>').argument('<dest>')
    .action(async (src: string, dest: string) => cpCmd(src, dest));

  program.command('exec').description('run a command in a running container').argument('<container>').argument('<command...>')
    .option('-i, --interactive', 'keep stdin open')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user>', 'user name or uid[:gid]')
    .passThroughOptions()
    .action(async (name: string, cmd: string[], o: { interactive?: boolean; env: string[]; workdir?: string; user?: string }) => {
      const r = await (await manager()).exec(name, cmd, { interactive: o.interactive, env: o.env, workdir: o.workdir, user: o.user, stdio: 'inherit' });
      process.exitCode = r.exitCode;
    });

  program.command('commit').description('create a new image from a container\'s changes').argument('<container>').argument('[repository]')
    .option('-m, --message <msg>', 'commit message')
    .option('-a, --author <author>', 'author (e.g. "Jane <jane@example.com>")')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL)', collect, [])
    .option('-p, --pause', 'pause the container during commit (default true)', true)
    .option('--no-pause', 'do not pause')
    .action(async (name: string, ref: string | undefined, o: { message?: string; author?: string; change: string[]; pause: boolean }) => {
      const img = await (await manager()).commit(name, { ref, message: o.message, author: o.author, changes: o.change, pause: o.pause });
      console.log(img.id);
    });
}

async function eachName(names: string[], fn: (m: ContainerManager, name: string) => Promise<unknown>): Promise<void> {
  const m = await manager();
  const failed: string[] = [];
  for (const n of names) {
    try {
      await fn(m, n);
      console.log(n);
    } catch (e) {
      console.error(`jiffy: ${n}: ${(e as Error).message}`);
      failed.push(n);
    }
  }
  if (failed.length) process.exitCode = 1;
}

async function runCmd(image: string, cmd: string[], f: CreateFlags & { detach?: boolean; interactive?: boolean }): Promise<void> {
  const [m, opts] = await Promise.all([manager(), createOptions(image, cmd, f)]);
  if (f.detach) {
    const { id } = await m.run({ ...opts, detach: true });
    console.log(id);
    return;
  }
  const stdin = f.interactive ? 'inherit' : 'ignore';
  // With --rm the output goes straight to our stdio (no log to keep): the fast path.
  const stdio = opts.autoRemove ? [stdin, 'inherit', 'inherit'] as const : [stdin, 'pipe', 'pipe'] as const;
  const { exit } = await m.run({
    ...opts,
    stdio: [...stdio],
    onOutput: (s, c) => (s === 'stderr' ? process.stderr : process.stdout).write(c),
  });
  const info = await exit;
  if (info.error) console.error(`jiffy: ${info.error}`);
  process.exitCode = info.exitCode;
}

async function startCmd(names: string[], attach: boolean): Promise<void> {
  const m = await manager();
  if (!attach) return eachName(names, (mm, n) => mm.start(n));
  if (names.length !== 1) throw new JiffyError('invalid_argument', 'start -a takes exactly one container');
  const { followLogs, logOffset, printLine } = await logs();
  const dir = await m.logDir(names[0]);
  const from = await logOffset(dir);
  const rec = await m.start(names[0]);
  await followLogs(dir, printLine, async () => (await m.records.load(rec.id).catch(() => undefined))?.state.status !== 'running', from);
  process.exitCode = (await m.wait(rec.id)).exitCode;
}

async function psCmd(o: { all?: boolean; quiet?: boolean; format?: string }): Promise<void> {
  const recs = await (await manager()).list({ all: !!o.all });
  const { formatTable, psRows } = await format();
  if (o.quiet) return void recs.forEach((r) => console.log(r.id.slice(0, 12)));
  if (o.format === 'json') return void console.log(JSON.stringify(recs));
  if (o.format && o.format !== 'table') throw new JiffyError('invalid_argument', `--format ${o.format}: use table or json`);
  console.log(formatTable(psRows(recs)));
}

async function logsCmd(name: string, o: { follow?: boolean; tail?: string }): Promise<void> {
  const m = await manager();
  const rec = await m.get(name);
  const dir = await m.logDir(rec.id);
  const tail = o.tail !== undefined && o.tail !== 'all' ? Number(o.tail) : undefined;
  if (tail !== undefined && !(tail >= 0)) throw new JiffyError('invalid_argument', `--tail needs a number, got ${o.tail}`);
  const { followLogs, logOffset, printLine, readLogs } = await logs();
  if (!o.follow) {
    for (const l of await readLogs(dir, { tail })) printLine(l);
    return;
  }
  // Follow: the rotated part first, then the current file from its start, so no line falls between.
  let from = 0;
  if (tail === undefined) for (const l of await readLogs(dir, { rotatedOnly: true })) printLine(l);
  else {
    from = await logOffset(dir);
    for (const l of await readLogs(dir, { tail })) printLine(l);
  }
  await followLogs(dir, printLine, async () => {
    const cur = await m.records.load(rec.id).catch(() => undefined);
    return !cur || (cur.state.status !== 'running' && cur.state.status !== 'paused');
  }, from);
}

async function cpCmd(src: string, dest: string): Promise<void> {
  const m = await manager();
  const split = (s: string) => {
    const i = s.indexOf(':');
    return i > 0 && !s.slice(0, i).includes('/') ? { ctr: s.slice(0, i), path: s.slice(i + 1) } : undefined;
  };
  const from = split(src);
  const to = split(dest);
  if (from && !to) return m.copyOut(from.ctr, from.path, dest);
  if (to && !from) return m.copyIn(to.ctr, src, to.path);
  throw new JiffyError('invalid_argument', 'cp needs exactly one CONTAINER:PATH argument: jiffy cp CTR:/path HOSTPATH or jiffy cp HOSTPATH CTR:/path');
}
