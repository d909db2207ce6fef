/**
 * `jiffy sandbox …` as a user runs it: separate CLI processes on one store (no server), sandboxes
 * outliving each call under their monitors, exit codes passed through, files both ways, snapshot
 * and fork, and TTL expiry enforced by the next command.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ensureRuntimeImage } from '../src/build/runtime-images.js';
import { cgroupsMatching } from '../src/containers/cgroup.js';
import { ContainerManager } from '../src/containers/manager.js';
import { ImageStore } from '../src/images/store.js';
import { repoRoot } from '../src/paths.js';
import { mountsUnder } from '../src/snapshots/mount.js';

const run = promisify(execFile);
const BIN = path.join(repoRoot(), 'bin', 'jiffy');

describe('sandboxes: CLI', () => {
  let root: string;
  let work: string;
  const jiffy = async (...args: string[]) => {
    try {
      const r = await run(BIN, ['--root', root, 'sandbox', ...args], { env: { ...process.env, JIFFY_LOG_LEVEL: 'warn' } });
      return { code: 0, out: r.stdout, err: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, out: x.stdout, err: x.stderr };
    }
  };
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-sb-cli-'));
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-sb-cli-work-'));
    await ensureRuntimeImage(await ImageStore.open(root), 'busybox');
  });
  after(async () => {
    const store = await ImageStore.open(root);
    const cm = new ContainerManager({ store, warm: false });
    const ids = (await cm.records.list()).map((r) => r.id);
    for (const id of ids) await cm.remove(id, { force: true }).catch(() => undefined);
    const mounts = await mountsUnder(root);
    const cgroups = (await Promise.all(ids.map((id) => cgroupsMatching(id)))).flat();
    await fs.rm(root, { recursive: true, force: true });
    await fs.rm(work, { recursive: true, force: true });
    assert.deepEqual(mounts, []);
    assert.deepEqual(cgroups, []);
  });

  it('creates, execs, copies, snapshots, forks and removes across CLI calls', async () => {
    const created = await jiffy('create', '--ttl', '120', '-e', 'WHO=cli');
    assert.equal(created.code, 0, created.err);
    const id = created.out.trim();
    assert.match(id, /^[0-9a-z]{32}$/);
    const r = await jiffy('exec', id.slice(0, 10), '--', 'sh', '-c', 'echo $WHO; echo e >&2; exit 5');
    assert.deepEqual([r.code, r.out, r.err], [5, 'cli\n', 'e\n']);
    await fs.writeFile(path.join(work, 'in.txt'), 'from the host\n');
    assert.equal((await jiffy('cp', path.join(work, 'in.txt'), `${id}:/data/in.txt`)).code, 0);
    assert.equal((await jiffy('exec', '-w', '/data', id, 'cat', 'in.txt')).out, 'from the host\n');
    assert.equal((await jiffy('cp', `${id}:/data/in.txt`, '-')).out, 'from the host\n');
    const snap = await jiffy('snapshot', id, '-r', 'cli-snap:1', '-m', 'with data');
    assert.match(snap.out, /^cli-snap:1 sha256:[0-9a-f]{64}\n$/);
    await jiffy('exec', id, 'rm', '/data/in.txt');
    const forks = (await jiffy('fork', 'cli-snap:1', '-n', '2')).out.trim().split('\n');
    assert.equal(forks.length, 2);
    for (const f of forks) assert.equal((await jiffy('exec', f, 'cat', '/data/in.txt')).out, 'from the host\n');
    const ls = JSON.parse((await jiffy('ls', '--json')).out) as Array<{ id: string; status: string }>;
    assert.deepEqual(new Set(ls.map((s) => s.id)), new Set([id, ...forks]));
    assert.ok(ls.every((s) => s.status === 'running'));
    const timedOut = await jiffy('exec', '-t', '0.3', id, 'sleep', '60');
    assert.equal(timedOut.code, 137);
    assert.match(timedOut.err, /timed out/);
    assert.equal((await jiffy('rm', id, ...forks)).code, 0);
    assert.equal((await jiffy('ls', '--json')).out.trim(), '[]');
    const bad = await jiffy('exec', id, 'true');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /no sandbox/);
  });

  it('expires a sandbox at its TTL on the next command', async () => {
    const id = (await jiffy('create', '--ttl', '1')).out.trim();
    await new Promise((r) => setTimeout(r, 1200));
    assert.doesNotMatch((await jiffy('ls')).out, new RegExp(id.slice(0, 12)));
    const bad = await jiffy('inspect', id);
    assert.match(bad.err, /no sandbox/);
  });
});
