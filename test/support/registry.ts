import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const REGISTRY_BIN = '/usr/bin/docker-registry';

/** A docker-registry (distribution 2.x) on 127.0.0.1 with its storage in a temp dir. */
export interface TestRegistry {
  /** `127.0.0.1:PORT` — the registry part of image references. */
  host: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound and released; the registry binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts Debian's docker-registry on a random port. With `htpasswd`, the registry requires HTTP
 * basic auth for those users (bcrypt file made with apache2-utils' `htpasswd -B`). Fails loudly
 * when the binary is missing, naming the package to install.
 */
export async function startRegistry(opts: { htpasswd?: Record<string, string> } = {}): Promise<TestRegistry> {
  await fs.access(REGISTRY_BIN).catch(() => {
    throw new Error(`${REGISTRY_BIN} is missing: apt-get install docker-registry (scripts/setup.sh does)`);
  });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-registry-'));
  const port = await freePort();
  let auth = '';
  if (opts.htpasswd) {
    const file = path.join(dir, 'htpasswd');
    await writeHtpasswd(file, opts.htpasswd);
    auth = `auth:\n  htpasswd:\n    realm: jiffy-test\n    path: ${file}\n`;
  }
  const config = path.join(dir, 'config.yml');
  await fs.writeFile(
    config,
    `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  const child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const stop = async () => {
    await killChild(child);
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(port, child, () => stderr);
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: `127.0.0.1:${port}`, port, dir, stop };
}

async function writeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  await fs.access('/usr/bin/htpasswd').catch(() => {
    throw new Error('/usr/bin/htpasswd is missing: apt-get install apache2-utils (scripts/setup.sh does)');
  });
  const lines: string[] = [];
  for (const [user, pass] of Object.entries(users)) {
    const { stdout } = await run('htpasswd', ['-nbB', user, pass]);
    lines.push(stdout.trim());
  }
  await fs.writeFile(file, lines.join('\n') + '\n');
}

async function waitReady(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${stderr()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on 127.0.0.1:${port} within 15 s: ${stderr()}`);
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
