import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capacity, parseFunctionRef, parseSettings } from './spec.js';

test('defaults fill in per runtime', () => {
  const n = parseSettings({ runtime: 'node' });
  assert.equal(n.handler, 'index.handler');
  assert.equal(n.memoryMb, 256);
  assert.equal(parseSettings({ runtime: 'python' }).handler, 'main.handler');
  assert.equal(parseSettings({ runtime: 'exec' }).handler, './handler');
});

test('query strings are coerced and bad values name their field', () => {
  const s = parseSettings({ runtime: 'node', memoryMb: '128', maxInstances: '3', concurrency: '4' });
  assert.equal(s.memoryMb, 128);
  assert.equal(capacity(s), 12);
  assert.throws(() => parseSettings({ runtime: 'node', cpus: 'lots' }), /"cpus"/);
  assert.throws(() => parseSettings({ runtime: 'node', handler: 'nodot' }), /"handler"/);
  assert.throws(() => parseSettings({ runtime: 'node', env: { '1BAD': 'x' } }), /"env.1BAD"/);
  assert.throws(() => parseSettings({ runtime: 'python', concurrency: 2 }), /"concurrency"/);
});

test('NAME and NAME@N refs', () => {
  assert.deepEqual(parseFunctionRef('hello'), { name: 'hello' });
  assert.deepEqual(parseFunctionRef('hello@2'), { name: 'hello', version: 2 });
  assert.throws(() => parseFunctionRef('hello@0'), /version/);
  assert.throws(() => parseFunctionRef('../x'), /invalid function name/);
});
