import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { LogWriter, droppedLines, droppedMarker, readLogs } from './logs.js';

describe('LogWriter', () => {
  it('splits lines per stream, rotates by size and counts what it drops', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-logs-'));
    try {
      const w = new LogWriter(dir, 1024);
      w.write('stdout', 'par');
      w.write('stderr', 'err line\n');
      w.write('stdout', 'tial\n');
      for (let i = 0; i < 100; i++) w.write('stdout', `n${i}\n`);
      w.write('stdout', 'no newline at end');
      w.close();
      const lines = await readLogs(dir);
      const dropped = await droppedLines(dir);
      assert.ok(dropped > 0);
      assert.equal(lines[0].log, `${droppedMarker(dropped)}\n`);
      assert.equal(lines.length - 1 + dropped, 103, 'every line kept or counted');
      assert.equal(lines.at(-1)!.log, 'no newline at end');
      const dir2 = await fs.mkdtemp(path.join(os.tmpdir(), 'jiffy-logs-'));
      const all = new LogWriter(dir2, 1 << 20);
      all.write('stdout', 'par');
      all.write('stderr', 'err line\n');
      all.write('stdout', 'tial\n');
      all.close();
      // A partial stdout line waits for its end; the complete stderr line is written first.
      assert.deepEqual((await readLogs(dir2)).map((l) => [l.s, l.log]), [['stderr', 'err line\n'], ['stdout', 'partial\n']]);
      await fs.rm(dir2, { recursive: true, force: true });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
