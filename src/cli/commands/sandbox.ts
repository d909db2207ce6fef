/**
 * `jiffy sandbox create|exec|cp|snapshot|fork|ls|inspect|rm|serve` — sandboxes on the local store
 * (library mode: no server needed). Sandboxes outlive the CLI call under a detached monitor; TTL
 * expiry is enforced by every sandbox command (and continuously by `jiffy sandbox serve`).
 * `serve` boots through its own launcher fork server instead (./sandboxes/service.ts): much faster,
 * but its sandboxes live only as long as the server.
 */
import type { Command } from 'commander';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { JiffyError } from '../../errors.js';
import { defaultRoot } from '../../paths.js';
import { ImageStore } from '../../images/store.js';
import { ContainerManager } from '../../containers/manager.js';
import { formatTable } from '../../containers/format.js';
import { createLogger } from '../../log.js';
import { SandboxManager } from '../../sandboxes/manager.js';
import { serveSandboxes } from '../../sandboxes/server.js';
import { createSandboxService } from '../../sandboxes/service.js';
import type { Sandbox, SandboxCreateOptions } from '../../sandboxes/types.js';

const collect = (v: string, prev: string[]) => [...prev, v];

/** A manager for one CLI call: no warm mounts, no reaper timer (expired ones are reaped now). */
async function manager(): Promise<SandboxManager> {
  const store = await ImageStore.open(defaultRoot());
  const sm = new SandboxManager({ containers: new ContainerManager({ store, warm: false }), store, boot: 'monitor', reapIntervalMs: 0 });
  await sm.reap();
  return sm;
}

interface CreateFlags { image?: string; memory?: string; cpus?: string; network?: boolean; ttl?: string; env: string[]; count?: string; capAdd: string[]; json?: boolean }

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new JiffyError('invalid_argument', `${flag} needs a positive number, got ${JSON.stringify(v)}`);
  return n;
}

function createOpts(f: CreateFlags, from?: string): SandboxCreateOptions {
  return {
    image: from ? undefined : f.image, from, memoryMb: num(f.memory, '--memory'), cpus: num(f.cpus, '--cpus'),
    network: !!f.network, ttlS: num(f.ttl, '--ttl'), env: f.env, count: num(f.count, '--count'),
    capabilities: f.capAdd,
  };
}

function printSandboxes(list: Sandbox[], json?: boolean): void {
  if (json) return console.log(JSON.stringify(list, null, 2));
  for (const s of list) console.log(s.id);
}

function withCreateFlags(c: Command): Command {
  return c
    .option('-m, --memory <MB>', 'memory limit in MB (default 512)')
    .option('--cpus <n>', 'CPU limit (e.g. 0.5)')
    .option('--network', 'give the sandbox the host network (default: loopback only)')
    .option('--ttl <seconds>', 'remove the sandbox after this long (default 300)')
    .option('-e, --env <KEY=VALUE>', 'environment for every exec (repeatable)', collect, [])
    .option('-n, --count <n>', 'how many sandboxes (default 1)')
    .option('--cap-add <CAP>', 'give the sandbox\'s processes this capability, e.g. CAP_CHOWN (repeatable; default none)', collect, [])
    .option('--json', 'print the sandbox records as JSON');
}

async function execCmd(id: string, cmd: string[], o: { env: string[]; cwd?: string; timeout?: string; maxOutput?: string; interactive?: boolean }): Promise<void> {
  const sm = await manager();
  const x = await sm.exec(id, {
    cmd: cmd[0] === '--' ? cmd.slice(1) : cmd, env: o.env, cwd: o.cwd, stdin: o.interactive ? process.stdin : undefined,
    timeoutS: o.timeout !== undefined ? Number(o.timeout) : undefined,
    maxOutputBytes: o.maxOutput !== undefined ? Number(o.maxOutput) : undefined,
  });
  x.stdout.pipe(process.stdout);
  x.stderr.pipe(process.stderr);
  const r = await x.done;
  if (r.timedOut) console.error(`jiffy: the command timed out and was killed`);
  if (r.truncated) console.error(`jiffy: output reached the limit; the rest was discarded and the command killed`);
  process.exitCode = r.exitCode;
}

/** `cp SRC DST`: exactly one side is `SANDBOX:/path`. */
async function cpCmd(src: string, dst: string): Promise<void> {
  const side = (s: string) => /^([0-9a-z]+):(\/.*)$/.exec(s);
  const from = side(src);
  const to = side(dst);
  if (!!from === !!to) throw new JiffyError('invalid_argument', 'cp copies one file between the host and a sandbox: use jiffy sandbox cp FILE ID:/path or ID:/path FILE');
  const sm = await manager();
  if (to) {
    const bytes = await sm.writeFile(to[1], to[2], fs.createReadStream(src), fs.statSync(src).mode & 0o777);
    console.error(`${bytes} bytes → ${to[1].slice(0, 12)}:${to[2]}`);
  } else {
    const s = await sm.readFile(from![1], from![2]);
    await pipeline(s, dst === '-' ? process.stdout : fs.createWriteStream(dst));
  }
}

function lsRows(list: Sandbox[]): string[][] {
  const left = (s: Sandbox) => Math.max(0, Math.round((Date.parse(s.expiresAt) - Date.now()) / 1000));
  return [['SANDBOX ID', 'IMAGE', 'STATUS', 'EXPIRES IN', 'SNAPSHOTS'], ...list.map((s) => [s.id.slice(0, 12), s.image, s.status, `${left(s)}s`, String(s.snapshots.length)])];
}

export function register(program: Command): void {
  const sb = program.command('sandbox').description('ephemeral test environments: create, exec, cp, snapshot, fork').enablePositionalOptions();
  withCreateFlags(sb.command('create').description('create sandboxes (prints their ids)').option('-i, --image <image>', 'image (default busybox:latest)'))
    .action(async (f: CreateFlags) => printSandboxes(await (await manager()).create(createOpts(f)), f.json));
  withCreateFlags(sb.command('fork').description('create sandboxes from a snapshot (each with its own upper dir)').argument('<snapshot>'))
    .action(async (snap: string, f: CreateFlags) => printSandboxes(await (await manager()).create(createOpts(f, snap)), f.json));
  sb.command('exec').description('run a command in a sandbox; exits with its status').argument('<sandbox>').argument('<command...>')
    .option('-e, --env <KEY=VALUE>', 'extra environment (repeatable)', collect, [])
    .option('-w, --cwd <dir>', 'working directory in the sandbox')
    .option('-t, --timeout <seconds>', 'kill the command after this long (default 60, 0 = none)')
    .option('--max-output <bytes>', 'stop after this much output (default 16 MiB)')
    .option('-i, --interactive', 'pass this process\'s stdin to the command')
    .passThroughOptions()
    .action(execCmd);
  sb.command('cp').description('copy a file: FILE ID:/path (in) or ID:/path FILE|- (out)').argument('<src>').argument('<dst>').action(cpCmd);
  sb.command('snapshot').description('commit a sandbox as an image layer (prints the ref and id)').argument('<sandbox>')
    .option('-r, --ref <name:tag>', 'image reference for the snapshot')
    .option('-m, --message <msg>', 'history comment')
    .action(async (id: string, o: { ref?: string; message?: string }) => {
      const s = await (await manager()).snapshot(id, o);
      console.log(`${s.ref} ${s.id}`);
    });
  sb.command('ls').description('list sandboxes').option('--json', 'as JSON')
    .action(async (o: { json?: boolean }) => {
      const list = await (await manager()).list();
      console.log(o.json ? JSON.stringify(list, null, 2) : formatTable(lsRows(list)));
    });
  sb.command('inspect').description('show one sandbox as JSON').argument('<sandbox>')
    .action(async (id: string) => console.log(JSON.stringify(await (await manager()).get(id), null, 2)));
  sb.command('rm').description('remove sandboxes').argument('<sandbox...>')
    .action(async (ids: string[]) => {
      const sm = await manager();
      for (const id of ids) await sm.remove(id);
    });
  sb.command('serve').description('serve the sandbox HTTP API (no Redis needed); reaps expired sandboxes')
    .option('-p, --port <port>', 'TCP port', '8090').option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--pool <n>', 'keep N booted sandboxes ready per configuration in use (the default image is warmed at start; 0 = boot each on demand)', '1')
    .action(serveCmd);
}

async function serveCmd(o: { port: string; host: string; pool: string }): Promise<void> {
  const log = createLogger('jiffy-sandbox');
  const size = Number(o.pool);
  if (!Number.isInteger(size) || size < 0) throw new JiffyError('invalid_argument', `--pool needs a whole number, got ${JSON.stringify(o.pool)}`);
  const store = await ImageStore.open(defaultRoot());
  // Its own launcher fork server: sandboxes boot and exec in milliseconds, and die with the server.
  const service = await createSandboxService({ store, log, pool: { size } });
  const server = await serveSandboxes(service.sandboxes, { port: Number(o.port), host: o.host }).catch(async (e) => {
    await service.close();
    throw e;
  });
  console.log(`sandbox API on ${server.url}/v1/sandboxes`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  await service.close();
}
