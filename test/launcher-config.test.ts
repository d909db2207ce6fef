/**
 * Launcher conformance: malformed configs are refused with an error that names the field, and
 * nothing is left behind — no cgroup, no state directory, no process.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { cgroupsMatching, describeEachRuntime } from './support/conformance.js';
import { conformanceSpec } from './support/oci-spec.js';
import { type ConformanceRuntime } from './support/oci-runtimes.js';

type Spec = Record<string, any>;

/** A malformed config: how to break a valid spec, and what the error must mention. */
interface BadCase {
  what: string;
  mutate: (s: Spec) => Spec | string;
  mentions: RegExp;
}

const CASES: BadCase[] = [
  { what: 'config.json is not JSON', mutate: () => '{"ociVersion": "1.0.2", "process": ', mentions: /json|parse/i },
  { what: 'process.args is missing', mutate: (s) => (delete s.process.args, s), mentions: /args/ },
  { what: 'process.args is empty', mutate: (s) => ((s.process.args = []), s), mentions: /args/ },
  { what: 'root.path is missing', mutate: (s) => (delete s.root, s), mentions: /root/i },
  {
    what: 'root.path does not exist',
    mutate: (s) => ((s.root.path = '/nonexistent-jiffy-rootfs'), s),
    mentions: /nonexistent-jiffy-rootfs/,
  },
  { what: 'an unknown namespace type', mutate: (s) => (s.linux.namespaces.push({ type: 'bogusns' }), s), mentions: /namespace|bogusns/i },
  {
    what: 'memory limit is not a number',
    mutate: (s) => ((s.linux.resources = { memory: { limit: 'lots' } }), s),
    mentions: /memory|limit/i,
  },
  {
    what: 'an unknown rlimit',
    mutate: (s) => ((s.process.rlimits = [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }]), s),
    mentions: /RLIMIT_BOGUS/,
  },
  {
    what: 'an unknown capability',
    mutate: (s) => ((s.process.capabilities.bounding = ['CAP_BOGUS']), s),
    mentions: /CAP_BOGUS/,
  },
  {
    what: 'a mount without destination',
    mutate: (s) => (s.mounts.push({ type: 'tmpfs', source: 'tmpfs' }), s),
    mentions: /destination/,
  },
  { what: 'process.user.uid is not a number', mutate: (s) => ((s.process.user.uid = 'root'), s), mentions: /uid/ },
];

/** Run and return the error text, or throw when the runtime accepted the config. */
async function refusal(rt: ConformanceRuntime, bundle: string, id: string): Promise<string> {
  let accepted: string | undefined;
  try {
    const o = await rt.run(bundle, id);
    if (rt.kind === 'binding' || o.exitCode === 0) accepted = JSON.stringify(o);
    else return o.stderr;
  } catch (e) {
    if (rt.kind === 'cli') throw e;
    return (e as Error).message;
  }
  throw new assert.AssertionError({ message: `${rt.name} accepted a malformed config: ${accepted}` });
}

describeEachRuntime('launcher config validation', (ctx) => {

    for (const c of CASES) {
      test(`refuses: ${c.what}`, async () => {
        const id = ctx.env.id();
        const spec = conformanceSpec({ rootPath: ctx.env.rootfs, args: ['/bin/true'], memoryBytes: 64 << 20 });
        const bundle = await ctx.env.rawBundle(c.mutate(spec));
        const msg = await refusal(ctx.rt, bundle, id);
        assert.match(msg, c.mentions, `error does not name the field: ${JSON.stringify(msg)}`);
        assert.deepEqual(await cgroupsMatching(id), [], 'a cgroup was created for a refused config');
        const leftovers = readdirSync(ctx.rt.stateRoot, { recursive: true }).map(String).filter((p) => p.includes(id));
        assert.deepEqual(leftovers, [], 'state was created for a refused config');
      });
    }

    test('a missing bundle is refused clearly', async () => {
      const id = ctx.env.id();
      const msg = await refusal(ctx.rt, `${ctx.env.dir}/no-such-bundle`, id);
      assert.match(msg, /no-such-bundle|config\.json|No such file|ENOENT/i);
    });
});
