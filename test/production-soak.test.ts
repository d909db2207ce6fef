import { test } from 'node:test';
import assert from 'node:assert/strict';
import { missing, runSoak } from '../bench/soak.js';

// The soak (bench/soak.ts) for 20 s at 10 invocations/s: warm, cold, failing and timing-out
// invocations through the whole stack; every one must be accounted for and nothing may leak.
test('a 20 s soak accounts for every invocation and leaks nothing', async () => {
  const r = await runSoak({ durationMs: 20_000, rate: 10 });
  assert.deepEqual(r.leaks, []);
  for (const [kind, k] of Object.entries(r.kinds)) {
    assert.ok(k.issued > 0, `${kind} invocations were sent`);
    assert.equal(missing(k), 0, `${kind}: every invocation succeeded, failed with a reason or is a dead letter`);
  }
  assert.equal(r.kinds.failing.deadLettered, r.kinds.failing.issued, 'every failing async invocation ends as a dead letter');
  assert.equal(r.kinds.timeout.deadLettered, r.kinds.timeout.issued, 'every timed-out async invocation ends as a dead letter');
  assert.ok(r.kinds.warm.succeeded > 0 && r.kinds.cold.succeeded > 0);
  assert.equal(r.ok, true);
});
