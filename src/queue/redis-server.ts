import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { JiffyError } from '../errors.js';

export interface RedisServerOptions {
  /** Working dir (dump/AOF files, log). */
  dir: string;
  /** Port to use; 0 or undefined = `preferPort` if free, else any free port. */
  port?: number;
  preferPort?: number;
  /** appendonly yes (jiffy up) or no persistence at all (tests). */
  persistent: boolean;
}

export interface RedisServerHandle {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (`prefer` if it is free). */
export async function freePort(prefer?: number): Promise<number> {
  const tryListen = (p: number) =>
    new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(p, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
  if (prefer) {
    try { return await tryListen(prefer); } catch { /* taken: any port will do */ }
  }
  return tryListen(0);
}

/**
 * Starts a private `redis-server` bound to 127.0.0.1 (used by `jiffy up` when REDIS_URL is unset,
 * and by tests). It is our child: `stop()` shuts it down (SHUTDOWN, then SIGKILL if it lingers).
 */
export async function startRedisServer(o: RedisServerOptions): Promise<RedisServerHandle> {
  await fs.mkdir(o.dir, { recursive: true });
  if (o.persistent) await stopLeftover(o.dir);
  const port = o.port || (await freePort(o.preferPort));
  const pidfile = path.join(o.dir, 'redis.pid');
  const persist = o.persistent ? ['--appendonly', 'yes', '--appendfsync', 'everysec', '--pidfile', pidfile] : ['--save', '', '--appendonly', 'no'];
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', o.dir, '--daemonize', 'no', '--protected-mode', 'yes', '--logfile', 'redis.log', ...persist];
  let child: ChildProcess;
  try {
    child = spawn('redis-server', args, { stdio: 'ignore', cwd: o.dir });
    await new Promise<void>((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject); });
  } catch (e) {
    throw new JiffyError('unavailable', 'cannot start redis-server: install it (apt-get install redis-server, or bash scripts/setup.sh) or set REDIS_URL', { cause: e });
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `redis://127.0.0.1:${port}`;
  await waitPing(url, child, o.dir);
  return {
    url,
    port,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM'); // redis-server saves (AOF fsync) and exits on SIGTERM
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * A redis-server left running on `dir` by a `jiffy up` that was killed (SIGKILL leaves its child
 * running): two servers appending to one AOF directory would corrupt it, so the leftover is
 * stopped with SIGTERM (which flushes its AOF) before a new one starts on the same data. One whose
 * parent is a live `jiffy up` belongs to another instance on this root: that is refused.
 */
async function stopLeftover(dir: string): Promise<void> {
  const pid = Number.parseInt(await fs.readFile(path.join(dir, 'redis.pid'), 'utf8').catch(() => ''), 10);
  const ours = async () => pid > 0
    && (await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'redis-server'
    && (await fs.readlink(`/proc/${pid}/cwd`).catch(() => '')) === path.resolve(dir);
  if (!(await ours())) return;
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  const parent = (await fs.readFile(`/proc/${ppid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  if (parent.includes('up') && parent.some((a) => /(^|\/)jiffy$|cli\/main\.js$/.test(a))) {
    throw new JiffyError('failed_precondition', `another jiffy up (pid ${ppid}) is running on ${path.dirname(path.resolve(dir))} with its Redis (pid ${pid}); stop it first, or use another --root`);
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && (await ours()); i++) await new Promise((r) => setTimeout(r, 50));
  if (await ours()) process.kill(pid, 'SIGKILL');
}

async function waitPing(url: string, child: ChildProcess, dir: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      await r.ping();
      return;
    } catch {
      await new Promise((res) => setTimeout(res, 30));
    } finally {
      r.disconnect();
    }
  }
  const log = await fs.readFile(`${dir}/redis.log`, 'utf8').catch(() => '');
  child.kill('SIGKILL');
  throw new JiffyError('unavailable', `redis-server did not come up on ${url}: ${log.trim().split('\n').slice(-3).join(' | ')}`);
}
