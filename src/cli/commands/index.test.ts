import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { findVerb, registerAll } from './index.js';

test('findVerb skips options and the value of --root', () => {
  assert.equal(findVerb(['--root', '/x', 'run', 'busybox']), 'run');
  assert.equal(findVerb(['-h']), undefined);
  assert.equal(findVerb(['images', '--format', 'json']), 'images');
});

test('a known verb loads only its group; an unknown verb loads every group', async () => {
  const one = new Command('jiffy');
  await registerAll(one, ['images']);
  const names = one.commands.map((c) => c.name());
  assert.ok(names.includes('images'));
  assert.ok(!names.includes('deploy'), 'functions group should not be loaded for `images`');

  const all = new Command('jiffy');
  await registerAll(all, ['no-such-verb']);
  const allNames = all.commands.map((c) => c.name());
  for (const v of ['images', 'run', 'deploy', 'up', 'build', 'pull']) assert.ok(allNames.includes(v), v);
});
