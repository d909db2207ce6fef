import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyParser, replyTag } from './protocol.js';

test('reply parser splits tagged replies from stray output across chunk boundaries', () => {
  const replies: unknown[] = [];
  let stray = '';
  const p = new ReplyParser('n1', (r) => replies.push(r), (t) => (stray += t));
  const line = replyTag('n1') + JSON.stringify({ type: 'result', id: 'a', ok: true, result: 42 }) + '\n';
  p.push('child says hi\n' + line.slice(0, 7));
  p.push(line.slice(7) + 'partial' + replyTag('n1') + '{"type":"ready"}\n');
  assert.deepEqual(replies, [{ type: 'result', id: 'a', ok: true, result: 42 }, { type: 'ready' }]);
  assert.equal(stray, 'child says hi\npartial');
});

test('reply parser ignores lines carrying another instance tag', () => {
  const replies: unknown[] = [];
  let stray = '';
  const p = new ReplyParser('mine', (r) => replies.push(r), (t) => (stray += t));
  p.push(replyTag('other') + '{"type":"ready"}\n');
  assert.equal(replies.length, 0);
  assert.match(stray, /ready/);
});
