/**
 * Binding-level tests of the fork-server: boot, exit status, stdio relay, config rejection,
 * concurrency, kill and OOM — against the real kernel, with a busybox rootfs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Readable } from 'node:stream';
import { hasCode } from '../errors.js';
import { Launcher } from './launcher.js';
import { defaultSpec } from './oci-spec.js';
import { cgroupsMatching, tempRootfs, uniqueId } from './test-support.js';

function collect(s: Readable | null): Promise<string> {
  if (!s) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

describe('Launcher (fork-server binding)', () => {
  let l: Launcher;
  let dir: string;
  let rootfs: string;
  const tag = uniqueId('boot');
  const spec = (args: string[], extra: Partial<Parameters<typeof defaultSpec>[0]> = {}) =>
    defaultSpec({ args, rootPath: rootfs, hostname: 'h1box', memoryBytes: 64 << 20, ...extra });

  before(async () => {
    ({ dir, rootfs } = await tempRootfs('jiffy-launcher-test'));
    l = await Launcher.start();
  });
  after(async () => {
    await l?.close();
    assert.deepEqual(cgroupsMatching(tag), [], 'cgroups left behind');
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('boots, relays stdin/stdout/stderr and reports the exit code', async () => {
    const h = await l.boot({ id: `${tag}-io`, config: spec(['/bin/sh', '-c', 'hostname; cat; echo oops >&2; exit 3']) });
    assert.ok(h.pid > 0);
    const out = collect(h.stdout);
    const err = collect(h.stderr);
    h.stdin!.end('from stdin\n');
    const st = await h.wait();
    assert.equal(await out, 'h1box\nfrom stdin\n');
    assert.equal(await err, 'oops\n');
    assert.equal(st.exitCode, 3);
    assert.equal(st.signal, null);
    assert.equal(st.oomKilled, false);
    assert.ok(st.peakMemoryBytes > 0, 'peak memory is reported');
    assert.ok(st.wallTimeUs > 0);
  });

  test('large stdin and stdout pass through intact (flow control both ways)', async () => {
    const h = await l.boot({ id: `${tag}-big`, config: spec(['/bin/cat']) });
    const payload = Buffer.alloc(3 << 20, 'abcdefghij');
    const out = collect(h.stdout);
    h.stdin!.end(payload);
    const st = await h.wait();
    assert.equal(st.exitCode, 0);
    assert.equal((await out).length, payload.length);
  });

  test('a slow reader loses nothing: the server stops reading the pipe while the stream is full', async () => {
    const h = await l.boot({ id: `${tag}-slow`, config: spec(['/bin/sh', '-c', 'head -c 20000000 /dev/zero; echo end >&2']) });
    let n = 0;
    h.stdout!.pause();
    await new Promise((r) => setTimeout(r, 200));
    h.stdout!.on('data', (c: Buffer) => { n += c.length; });
    h.stdout!.resume();
    const err = collect(h.stderr);
    const st = await h.wait();
    assert.equal(st.exitCode, 0);
    assert.equal(n, 20_000_000);
    assert.equal(await err, 'end\n');
  });

  test('stdio "null" gives the process /dev/null and no streams', async () => {
    const h = await l.boot({ id: `${tag}-null`, config: spec(['/bin/sh', '-c', 'read x; echo "[$x]"']), stdin: 'null', stdout: 'null', stderr: 'null' });
    assert.equal(h.stdout, null);
    assert.equal(h.stdin, null);
    assert.equal((await h.wait()).exitCode, 0);
  });

  test('a bad config is refused naming the field, before any cgroup exists', async () => {
    const id = `${tag}-bad`;
    const config = spec(['/bin/true']);
    (config.linux!.resources!.memory as Record<string, unknown>).limit = 'lots';
    await assert.rejects(l.boot({ id, config }), (e: Error) =>
      hasCode(e, 'invalid_argument') && /linux\.resources\.memory\.limit: expected an integer/.test(e.message));
    const ns = spec(['/bin/true']);
    ns.linux!.namespaces!.push({ type: 'bogus' as 'pid' });
    await assert.rejects(l.boot({ id, config: ns }), (e: Error) => hasCode(e, 'invalid_argument') && /unknown namespace type bogus/.test(e.message));
    assert.deepEqual(cgroupsMatching(id), []);
  });

  test('a missing executable fails the boot with the path in the message', async () => {
    await assert.rejects(l.boot({ id: `${tag}-noexec`, config: spec(['/bin/no-such-thing']) }), (e: Error) =>
      hasCode(e, 'not_found') && /no-such-thing/.test(e.message));
  });

  test('ids are unique while a container runs', async () => {
    const id = `${tag}-dup`;
    const h = await l.boot({ id, config: spec(['/bin/sleep', '100']) });
    await assert.rejects(l.boot({ id, config: spec(['/bin/true']) }), (e: Error) => hasCode(e, 'already_exists'));
    await h.kill('SIGKILL');
    const st = await h.wait();
    assert.equal(st.signal, 'SIGKILL');
    assert.equal(st.exitCode, 137);
  });

  test('many concurrent boots each get their own output and exit code', async () => {
    const n = 16;
    const runs = await Promise.all(Array.from({ length: n }, async (_, i) => {
      const h = await l.boot({ id: `${tag}-c${i}`, config: spec(['/bin/sh', '-c', `echo ${i}; exit ${i}`]) });
      const out = collect(h.stdout);
      return { i, st: await h.wait(), out: await out };
    }));
    for (const r of runs) {
      assert.equal(r.st.exitCode, r.i);
      assert.equal(r.out, `${r.i}\n`);
    }
  });

  test('a memory limit ends in a reported OOM kill', async () => {
    const h = await l.boot({
      id: `${tag}-oom`,
      config: spec(['/bin/sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'], { memoryBytes: 32 << 20 }),
    });
    const out = collect(h.stdout);
    const st = await h.wait();
    assert.equal(await out, '', 'the allocation survived the limit');
    assert.equal(st.oomKilled, true, JSON.stringify(st));
  });

  test('kill on an unknown id is not_found', async () => {
    await assert.rejects(l.kill(`${tag}-nope`, 'SIGTERM'), (e: Error) => hasCode(e, 'not_found'));
  });
});
