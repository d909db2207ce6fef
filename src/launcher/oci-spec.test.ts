import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CAPABILITIES, defaultSpec } from './oci-spec.js';

test('defaultSpec: all namespaces, runc-like mounts and limits', () => {
  const s = defaultSpec({ args: ['/bin/true'], rootPath: '/r', memoryBytes: 1 << 20, cpus: 0.5, pidsLimit: 10 });
  assert.deepEqual(s.linux!.namespaces!.map((n) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts']);
  assert.deepEqual(s.mounts!.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys']);
  assert.deepEqual(s.linux!.resources, { memory: { limit: 1 << 20, swap: 1 << 20 }, cpu: { quota: 50_000, period: 100_000 }, pids: { limit: 10 } });
  assert.equal(s.process.noNewPrivileges, true);
  assert.deepEqual(s.process.capabilities!.bounding, DEFAULT_CAPABILITIES);
});

test('defaultSpec: host network drops the netns; an empty capability list means none', () => {
  const s = defaultSpec({ args: ['x'], rootPath: '/r', network: 'host', capabilities: [] });
  assert.ok(!s.linux!.namespaces!.some((n) => n.type === 'network'));
  assert.deepEqual(s.process.capabilities, { bounding: [], effective: [], permitted: [] });
  assert.equal(s.linux!.resources, undefined);
});
