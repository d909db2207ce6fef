import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JiffyError, hasCode, isNoSpace, storeFull } from './errors.js';

test('isNoSpace finds ENOSPC or EDQUOT anywhere in the cause chain', () => {
  const enospc = Object.assign(new Error('write failed'), { code: 'ENOSPC' });
  assert.ok(isNoSpace(enospc));
  assert.ok(isNoSpace(new JiffyError('internal', 'wrapped', { cause: new Error('again', { cause: enospc }) })));
  assert.ok(isNoSpace(Object.assign(new Error('quota'), { code: 'EDQUOT' })));
  assert.ok(!isNoSpace(Object.assign(new Error('other'), { code: 'EACCES' })));
  assert.ok(!isNoSpace(undefined));
});

test('storeFull is resource_exhausted with reason store_full and says what to free', () => {
  const e = storeFull('/var/lib/jiffy', 'storing blob sha256:ab');
  assert.ok(hasCode(e, 'resource_exhausted'));
  assert.equal(e.details?.reason, 'store_full');
  assert.match(e.message, /^storing blob sha256:ab: no space left on .*\/var\/lib\/jiffy/);
  assert.match(e.message, /jiffy prune/);
});
