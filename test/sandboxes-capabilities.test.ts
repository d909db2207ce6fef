/**
 * Sandbox capabilities (issue 7: "no capabilities beyond what is asked"): by default a sandbox's
 * init and every exec run as uid 0 with no capability at all, so mount and chown fail; a sandbox
 * created with `capabilities` gets exactly those. Bad names are a 400 naming the culprit.
 * In both boot modes: jiffy-exec (runtime CLI) and the launcher's exec request take the sets from
 * the same config.json.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hasCode } from '../src/errors.js';
import { sandboxApp } from '../src/sandboxes/server.js';
import { SANDBOX_MODES, sandboxFixture, type SandboxFixture } from './sandboxes-support.js';

const CAP_LINES = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status; grep '^CapEff:' /proc/1/status | sed 's/^/init/'";

function capSets(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split('\n').map((l) => l.split(/:\s+/) as [string, string]));
}

for (const mode of SANDBOX_MODES) describe(`sandboxes: capabilities (${mode})`, () => {
  let f: SandboxFixture;
  before(async () => {
    f = await sandboxFixture('caps', mode);
  });
  after(async () => f?.cleanup());

  it('gives no capabilities by default: uid 0, but mount and chown fail', async () => {
    const [sb] = await f.sm.create({ ttlS: 60 });
    assert.deepEqual(sb.capabilities, []);
    const sets = await f.run(sb.id, CAP_LINES);
    assert.equal(sets.code, 0, sets.err);
    assert.deepEqual(capSets(sets.out), {
      CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000',
      CapBnd: '0000000000000000', CapAmb: '0000000000000000', initCapEff: '0000000000000000',
    });
    assert.equal((await f.run(sb.id, 'id -u')).out.trim(), '0');
    const mount = await f.run(sb.id, 'mkdir -p /mnt/t && mount -t tmpfs tmpfs /mnt/t');
    assert.notEqual(mount.code, 0, 'mount needs CAP_SYS_ADMIN');
    const chown = await f.run(sb.id, 'touch /tmp/f && chown 1:1 /tmp/f');
    assert.notEqual(chown.code, 0, 'chown to another owner needs CAP_CHOWN');
    assert.match(chown.err, /not permitted/i);
    // Files the sandbox writes are still its own (uid 0): no capability needed for that.
    assert.equal((await f.run(sb.id, 'echo hi > /tmp/mine && cat /tmp/mine && stat -c %u /tmp/mine')).out, 'hi\n0\n');
  });

  it('gives exactly the capabilities asked for (names normalized), to init and every exec', async () => {
    const [sb] = await f.sm.create({ ttlS: 60, capabilities: ['chown', 'CAP_CHOWN', 'CAP_KILL'] });
    assert.deepEqual(sb.capabilities, ['CAP_CHOWN', 'CAP_KILL']);
    const sets = capSets((await f.run(sb.id, CAP_LINES)).out);
    // CAP_CHOWN is bit 0, CAP_KILL bit 5.
    assert.equal(sets.CapEff, '0000000000000021');
    assert.equal(sets.CapBnd, '0000000000000021');
    assert.equal(sets.initCapEff, '0000000000000021');
    const chown = await f.run(sb.id, 'touch /tmp/f && chown 1:1 /tmp/f && stat -c %u:%g /tmp/f');
    assert.equal(chown.code, 0, chown.err);
    assert.equal(chown.out.trim(), '1:1');
    assert.notEqual((await f.run(sb.id, 'mkdir -p /mnt/t && mount -t tmpfs tmpfs /mnt/t')).code, 0, 'still no CAP_SYS_ADMIN');
  });

  it('refuses unknown capability names, naming the bad one', async () => {
    const before = (await f.sm.list()).length;
    await assert.rejects(f.sm.create({ capabilities: ['CAP_CHOWN', 'CAP_FLY'] }), (e) => hasCode(e, 'invalid_argument') && /CAP_FLY/.test((e as Error).message));
    const app = sandboxApp(f.sm, 1024 * 1024);
    const res = await app.request('/v1/sandboxes', { method: 'POST', body: JSON.stringify({ capabilities: ['CAP_NET_RAW', 'bogus'] }), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 400);
    const body = await res.text();
    assert.match(body, /invalid_argument/);
    assert.match(body, /capability \\"bogus\\"/);
    assert.equal((await f.sm.list()).length, before, 'nothing was created');
  });
});
