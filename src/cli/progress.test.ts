import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgressRenderer, formatBytes, formatLine } from './progress.js';

/** A stand-in for process.stderr that records what is written. */
function sink(isTTY: boolean): NodeJS.WriteStream & { text: () => string } {
  let out = '';
  return {
    isTTY,
    columns: 100,
    write(s: string) {
      out += s;
      return true;
    },
    text: () => out,
  } as unknown as NodeJS.WriteStream & { text: () => string };
}

test('non-TTY: one line per action change, byte updates throttled', () => {
  const s = sink(false);
  const p = createProgressRenderer(s, { intervalMs: 60_000 });
  p({ id: 'sha256:' + 'a'.repeat(64), action: 'Downloading', current: 1, total: 2000 });
  p({ id: 'sha256:' + 'a'.repeat(64), action: 'Downloading', current: 1500, total: 2000 });
  p({ id: 'sha256:' + 'a'.repeat(64), action: 'Download complete', done: true });
  p({ id: 'step-2', action: 'COPY' });
  p.close();
  assert.deepEqual(s.text().trim().split('\n'), ['aaaaaaaaaaaa: Downloading 1B/2.00kB', 'aaaaaaaaaaaa: Download complete', 'step-2: COPY']);
});

test('TTY: lines are redrawn in place with a bar', () => {
  const s = sink(true);
  const p = createProgressRenderer(s);
  p({ id: 'l1', action: 'Downloading', current: 50, total: 100 });
  p({ id: 'l2', action: 'Waiting' });
  p.close();
  assert.match(s.text(), /\x1b\[2A/); // moved up over the two lines to redraw them
  assert.match(s.text(), /l1: Downloading \[=+> +\] 50B\/100B/);
});

test('formatting', () => {
  assert.equal(formatBytes(999), '999B');
  assert.equal(formatBytes(1_500_000), '1.50MB');
  assert.equal(formatLine({ id: 'x', action: 'Pushed' }, true), 'x: Pushed');
});
