import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReference, parseReference } from './reference.js';
import { normalizeRef } from './store.js';

test('parseReference: names, tags, digests, registries', () => {
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseReference('busybox'), { repository: 'busybox', tag: 'latest' });
  assert.deepEqual(parseReference('busybox:1.36'), { repository: 'busybox', tag: '1.36' });
  assert.deepEqual(parseReference(`busybox@${d}`), { repository: 'busybox', digest: d });
  assert.deepEqual(parseReference(`ns/app:v1@${d}`), { repository: 'ns/app', tag: 'v1', digest: d });
  assert.deepEqual(parseReference('localhost:5000/ns/repo:tag'), { registry: 'localhost:5000', repository: 'ns/repo', tag: 'tag' });
  assert.deepEqual(parseReference('localhost/repo'), { registry: 'localhost', repository: 'repo', tag: 'latest' });
  assert.deepEqual(parseReference('registry.example.com/a/b/c'), { registry: 'registry.example.com', repository: 'a/b/c', tag: 'latest' });
  assert.deepEqual(parseReference('127.0.0.1:5000/x'), { registry: '127.0.0.1:5000', repository: 'x', tag: 'latest' });
  assert.deepEqual(parseReference('my_app-x.y__z'), { repository: 'my_app-x.y__z', tag: 'latest' });
});

test('parseReference: invalid input is invalid_argument with an example', () => {
  for (const bad of ['', 'UPPER', 'a b', 'a:', 'a:-x', 'a//b', '/a', 'a/', 'a@sha256:123', `a@sha256:${'g'.repeat(64)}`, 'a:b:c', '-a', 'a..b', 'x'.repeat(600)]) {
    assert.throws(() => parseReference(bad), (e: Error & { code?: string }) => e.code === 'invalid_argument' && /NAME\[:TAG\]/.test(e.message), bad);
  }
});

test('formatReference round-trips and normalizeRef uses familiar Docker Hub names', () => {
  for (const s of ['busybox:latest', 'localhost:5000/ns/repo:tag', `a/b@sha256:${'0'.repeat(64)}`, `a:t@sha256:${'0'.repeat(64)}`]) {
    assert.equal(formatReference(parseReference(s)), s);
  }
  assert.equal(normalizeRef('busybox'), 'busybox:latest');
  assert.equal(normalizeRef('docker.io/library/busybox:1'), 'busybox:1');
  assert.equal(normalizeRef('docker.io/made/by:x'), 'made/by:x');
  assert.equal(normalizeRef('localhost:5000/library/busybox'), 'localhost:5000/library/busybox:latest');
});
