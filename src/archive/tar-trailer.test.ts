import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { unpackLayer } from './unpack.js';
import { packTar } from '../../test/support/hostile-tars.js';

test('a tar that ends right after the last data (no padding, no end blocks) is accepted; a cut inside data or a header is not', async () => {
  const body = crypto.randomBytes(1000);
  const whole = await packTar([{ name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/f', body }]);
  const dataEnd = 512 * 2 + 1000;
  const cases: Array<[string, Buffer, boolean]> = [
    ['complete', whole, true],
    ['no end blocks', whole.subarray(0, 512 * 2 + 1024), true],
    ['no padding (umoci 0.4.7)', whole.subarray(0, dataEnd), true],
    ['half the padding', whole.subarray(0, dataEnd + 10), true],
    ['cut inside data', whole.subarray(0, dataEnd - 1), false],
    ['cut inside a header', whole.subarray(0, 512 + 100), false],
  ];
  for (const [name, buf, ok] of cases) {
    const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'jiffy-h3-trailer-'));
    try {
      const run = unpackLayer(Readable.from([buf]), dest);
      if (ok) {
        const r = await run;
        assert.deepEqual(fs.readFileSync(path.join(dest, 'd/f')), body, name);
        assert.equal(r.diffId, `sha256:${crypto.createHash('sha256').update(buf).digest('hex')}`, `${name}: diff id is of the original bytes`);
      } else {
        await assert.rejects(run, /truncated/, name);
      }
    } finally {
      fs.rmSync(dest, { recursive: true, force: true });
    }
  }
});
