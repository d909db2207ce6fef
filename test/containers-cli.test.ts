/**
 * The container verbs through the real `jiffy` command line (a child process per call): run
 * with exit codes, -d + ps/logs/exec/top/diff/cp/commit/stop/rm, history of the committed image,
 * container inspect, and the errors a user sees.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../src/paths.js';
import { fixture, until, type Fixture } from './containers-support.js';

describe('containers: CLI', () => {
  let f: Fixture;
  const jiffy = (...args: string[]) => {
    const r = spawnSync(path.join(repoRoot(), 'bin', 'jiffy'), args, { env: { ...process.env, JIFFY_ROOT: f.root }, encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  before(async () => {
    f = await fixture('ctr-cli');
  });
  after(async () => f.cleanup());

  it('run --rm passes output and exit codes through', () => {
    const r = jiffy('run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3');
    assert.equal(r.code, 3, r.err);
    assert.equal(r.out, 'out\n');
    assert.equal(r.err, 'err\n');
    assert.equal(jiffy('run', '--rm', 'busybox', 'true').code, 0);
    assert.deepEqual(jiffy('ps', '-a', '-q').out, '', '--rm left nothing');
  });

  it('drives a detached container through its life', async () => {
    const run = jiffy('run', '-d', '--name', 'cli-web', '-e', 'WHO=cli', 'busybox', 'sh', '-c', 'echo started $WHO; echo data > /data.txt; exec sleep 1000');
    assert.equal(run.code, 0, run.err);
    const id = run.out.trim();
    assert.match(id, /^[0-9a-z]{32}$/);
    const ps = jiffy('ps');
    assert.match(ps.out.split('\n')[0], /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+NAMES$/);
    assert.match(ps.out, new RegExp(`${id.slice(0, 12)}\\s+busybox\\s+"sh -c .*Up .*cli-web`));
    await until(async () => jiffy('logs', 'cli-web').out === 'started cli\n', 'the log line');
    assert.equal(jiffy('exec', 'cli-web', 'sh', '-c', 'echo $WHO; cat /data.txt').out, 'cli\ndata\n');
    assert.match(jiffy('top', 'cli-web').out, /sleep 1000/);
    assert.match(jiffy('diff', 'cli-web').out, /^A \/data\.txt$/m);
    const host = await fs.mkdtemp(path.join(f.root, 'host-'));
    assert.equal(jiffy('cp', 'cli-web:/data.txt', host).code, 0);
    assert.equal(await fs.readFile(path.join(host, 'data.txt'), 'utf8'), 'data\n');
    const bad = jiffy('cp', 'cli-web:../../etc/passwd', host);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /escapes the container root/);
    const commit = jiffy('commit', '-m', 'from the cli', '-a', 'cli tester', '-c', 'CMD ["cat", "/data.txt"]', 'cli-web', 'clisnap:v1');
    assert.equal(commit.code, 0, commit.err);
    assert.match(jiffy('history', 'clisnap:v1').out, /from the cli|sleep 1000/);
    assert.equal(jiffy('run', '--rm', 'clisnap:v1').out, 'data\n');
    assert.equal(jiffy('stop', '-t', '1', 'cli-web').code, 0);
    const inspect = JSON.parse(jiffy('container', 'inspect', 'cli-web').out) as Array<{ id: string; state: { status: string; exitCode: number } }>;
    assert.equal(inspect[0].id, id);
    assert.equal(inspect[0].state.status, 'exited');
    // Plain `inspect` falls back to the container when no image has that name (or id prefix).
    const byName = JSON.parse(jiffy('inspect', 'cli-web').out) as Array<{ id: string }>;
    assert.equal(byName[0].id, id);
    assert.equal((JSON.parse(jiffy('inspect', id.slice(0, 12)).out) as Array<{ id: string }>)[0].id, id);
    assert.match((JSON.parse(jiffy('inspect', 'busybox').out) as Array<{ Id: string }>)[0].Id, /^sha256:/, 'an image still wins');
    const neither = jiffy('inspect', 'no-such-thing');
    assert.equal(neither.code, 1);
    assert.match(neither.err, /no such image or container: no-such-thing/);
    assert.match(jiffy('ps', '-a').out, /Exited \(137\)/);
    const json = JSON.parse(jiffy('ps', '-a', '--format', 'json').out) as Array<{ name: string }>;
    assert.ok(json.some((c) => c.name === 'cli-web'));
    assert.equal(jiffy('rm', 'cli-web').code, 0);
    assert.equal(jiffy('ps', '-a', '-q').out, '');
  });

  it('explains bad input', () => {
    const r = jiffy('run', '--rm', '--network', 'bridge', 'busybox', 'true');
    assert.equal(r.code, 1);
    assert.match(r.err, /--network bridge is not supported/);
    const m = jiffy('run', '--rm', '-m', '1k', 'busybox', 'true');
    assert.match(m.err, /too small/);
    assert.match(jiffy('logs', 'no-such-container').err, /no such container/);
  });
});
