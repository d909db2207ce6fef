import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChanges } from './commit.js';

describe('parseChanges', () => {
  it('turns -c lines into a config patch', () => {
    const p = parseChanges({ Env: ['A=1', 'B=2'] }, ['CMD ["cat", "/x"]', 'ENTRYPOINT echo hi', 'ENV B=3 C=4', 'WORKDIR /srv', 'USER nobody', 'LABEL k=v']);
    assert.deepEqual(p.Cmd, ['cat', '/x']);
    assert.deepEqual(p.Entrypoint, ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(p.Env, ['A=1', 'B=3', 'C=4']);
    assert.equal(p.WorkingDir, '/srv');
    assert.equal(p.User, 'nobody');
    assert.deepEqual(p.Labels, { k: 'v' });
  });
  it('refuses what it does not know', () => {
    assert.throws(() => parseChanges({}, ['RUN rm -rf /']), /not supported/);
    assert.throws(() => parseChanges({}, ['CMD ["unterminated"']), /bad JSON array/);
  });
});
