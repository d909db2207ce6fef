/**
 * diff and commit against real overlay mounts: A/C/D after add/change/delete, commit → run the
 * new image and find the change, deletions (whiteouts) and opaque directory replacements hidden
 * in the committed image, history entries, commit of a running (frozen) container, and
 * runAndCommit (what build's RUN uses).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runAndCommit } from '../src/containers/run-and-commit.js';
import { collector, fixture, type Fixture } from './containers-support.js';

describe('containers: diff and commit', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture('ctr-commit');
  });
  after(async () => f.cleanup());

  async function runOut(image: string, script: string): Promise<{ code: number; out: string }> {
    const c = collector();
    const { exit } = await f.mgr.run({ image, cmd: ['sh', '-c', script], autoRemove: true, onOutput: c.onOutput });
    return { code: (await exit).exitCode, out: c.text() };
  }

  it('diff lists added, changed and deleted paths', async () => {
    const { id, exit } = await f.mgr.run({
      image: 'busybox', cmd: ['sh', '-c', 'mkdir -p /data && echo new > /data/new.txt && echo changed >> /etc/passwd && rm /etc/group'],
    });
    assert.equal((await exit).exitCode, 0);
    const changes = (await f.mgr.diff(id)).map((c) => `${c.kind} ${c.path}`);
    assert.deepEqual(changes, ['A /data', 'A /data/new.txt', 'C /etc', 'D /etc/group', 'C /etc/passwd']);
    await f.mgr.remove(id);
  });

  it('commit makes one layer with a history entry; the new image boots with the change', async () => {
    const base = await f.store.resolve('busybox');
    const { id, exit } = await f.mgr.run({ image: 'busybox', cmd: ['sh', '-c', 'echo committed > /hello.txt && rm /etc/group'] });
    assert.equal((await exit).exitCode, 0);
    const img = await f.mgr.commit(id, { ref: 'snap:one', message: 'first snapshot', author: 'Tester <t@example.com>', changes: ['ENV STAGE=committed', 'CMD ["cat", "/hello.txt"]'] });
    assert.equal(img.layers.length, base.layers.length + 1);
    const last = img.config.history!.at(-1)!;
    assert.equal(last.comment, 'first snapshot');
    assert.equal(last.author, 'Tester <t@example.com>');
    assert.match(last.created_by!, /echo committed/);
    assert.ok(img.config.config?.Env?.includes('STAGE=committed'));
    assert.deepEqual(img.config.config?.Cmd, ['cat', '/hello.txt']);
    const c = collector();
    const r = await f.mgr.run({ image: 'snap:one', autoRemove: true, onOutput: c.onOutput });
    assert.equal((await r.exit).exitCode, 0);
    assert.equal(c.text(), 'committed\n');
    const gone = await runOut('snap:one', 'test -e /etc/group && echo present || echo absent; echo $STAGE');
    assert.equal(gone.out, 'absent\ncommitted\n', 'the deletion (whiteout) is part of the layer');
    await f.mgr.remove(id);
  });

  it('commit of an opaque directory replacement hides the old contents', async () => {
    const { id, exit } = await f.mgr.run({ image: 'busybox', cmd: ['sh', '-c', 'rm -rf /etc && mkdir /etc && echo only > /etc/only.txt'] });
    assert.equal((await exit).exitCode, 0);
    const changes = await f.mgr.diff(id);
    assert.ok(changes.some((c) => c.kind === 'D' && c.path === '/etc/passwd'), 'hidden lower files show as deleted');
    await f.mgr.commit(id, { ref: 'snap:opaque' });
    const r = await runOut('snap:opaque', 'ls /etc');
    assert.equal(r.out, 'only.txt\n');
    await f.mgr.remove(id);
  });

  it('commits a running container (frozen while its upper dir is copied) and keeps it running', async () => {
    const { id } = await f.mgr.run({ image: 'busybox', detach: true, cmd: ['sh', '-c', 'echo live > /live.txt; sleep 1000'] });
    const rec = await f.mgr.get(id);
    // The file is written right after start; exec confirms it is there before committing.
    const seen = await f.mgr.exec(id, ['sh', '-c', 'while [ ! -e /live.txt ]; do sleep 0.01; done; cat /live.txt'], { stdio: 'pipe' });
    assert.equal(seen.stdout.toString(), 'live\n');
    await f.mgr.commit(id, { ref: 'snap:live' });
    assert.equal((await f.mgr.get(id)).state.status, 'running');
    assert.equal((await f.mgr.get(id)).state.pid, rec.state.pid);
    assert.equal((await runOut('snap:live', 'cat /live.txt')).out, 'live\n');
    await f.mgr.remove(id, { force: true });
  });

  it('runAndCommit turns a command into an image and fails clearly on a non-zero exit', async () => {
    const img = await runAndCommit(f.store, { image: 'busybox', cmd: ['sh', '-c', 'echo built > /built.txt'], ref: 'snap:built', manager: f.mgr });
    assert.equal((await runOut(img.id, 'cat /built.txt')).out, 'built\n');
    await assert.rejects(
      runAndCommit(f.store, { image: 'busybox', cmd: ['sh', '-c', 'echo failing; exit 4'], manager: f.mgr }),
      (e: { code?: string; message: string }) => e.code === 'failed_precondition' && /returned a non-zero code: 4/.test(e.message) && /failing/.test(e.message),
    );
  });
});
