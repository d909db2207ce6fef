import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, Worker, type Job } from 'bullmq';
import { Hono } from 'hono';
import { z } from 'zod';
import type { InvocationJob, InvocationOutcome, OutcomeCode } from '../src/functions/outcome.js';
import { onError } from '../src/gateway/errors.js';
import { createLogger } from '../src/log.js';
import { connectRedis } from '../src/queue/connection.js';
import { CallbackSender, checkCallbackUrl, type CallbackPayload } from '../src/retries/callbacks.js';
import { DeadLetters } from '../src/retries/dead-letters.js';
import { createRetryKeys } from '../src/retries/keys.js';
import { deadLetterRoutes } from '../src/retries/routes.js';
import { deadLetterFailedJob, settleAsync, type SettleDeps } from '../src/retries/settle.js';
import { parseBackoff, retryFields, retryJobOptions } from '../src/retries/spec.js';
import { startTestRedis, type TestRedis } from './support/redis.js';

// Retries, dead letters and callbacks on real BullMQ queues in a real Redis, with a processor
// shaped like the function worker's (outcome first, then settleAsync), and a real HTTP receiver.
const log = createLogger('t', 'silent');
let r: TestRedis;
let redis: ReturnType<typeof connectRedis>;
let receiver: http.Server;
let receiverUrl: string;
const received: CallbackPayload[] = [];
let answers: number[] = [];

before(async () => {
  r = await startTestRedis();
  redis = connectRedis(r.url);
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = answers.shift() ?? 200;
      if (status === 200) received.push(JSON.parse(Buffer.concat(chunks).toString()) as CallbackPayload);
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
after(async () => {
  await new Promise<void>((resolve) => { receiver?.close(() => resolve()); receiver?.closeAllConnections(); });
  redis?.disconnect();
  await r?.stop();
});

function outcome(id: string, ok: boolean, code?: OutcomeCode): InvocationOutcome {
  return { id, ok, ...(ok ? { result: { fine: true } } : { error: { code: code ?? 'function_error', message: 'Error: boom' } }), logs: 'log line\n', coldStart: false, functionVersion: 1, timings: { queueWaitMs: 0, bootMs: 0, initMs: 0, handlerMs: 1, totalMs: 1 } };
}

/** A queue + worker pair whose processor "runs" a function that fails `failures(job)` times. */
async function harness(behave: (job: Job, attempt: number) => OutcomeCode | 'ok', deps: SettleDeps) {
  const prefix = `${r.prefix('rq')}:bull`;
  const queue = new Queue('fn-f', { connection: redis, prefix });
  const conn = connectRedis(r.url);
  const worker = new Worker('fn-f', async (job: Job) => {
    const b = behave(job, job.attemptsMade + 1);
    const o = outcome(job.id!, b === 'ok', b === 'ok' ? undefined : b);
    await settleAsync(deps, job as Job & { data: InvocationJob }, o);
    return o;
  }, { connection: conn, prefix });
  worker.on('failed', (job, err) => void deadLetterFailedJob(deps, job, err));
  const done = (id: string) => new Promise<Job>((resolve) => {
    const check = async () => {
      const j = await queue.getJob(id);
      const st = j ? await j.getState() : 'unknown';
      if (st === 'completed' || st === 'failed') return resolve((await queue.getJob(id))!);
      setTimeout(check, 20);
    };
    void check();
  });
  const add = (id: string, opts: object, callback?: string) => {
    const data: InvocationJob & { callback?: string } = { name: 'f', version: 1, mode: 'async', event: { n: id }, enqueuedAt: Date.now(), ...(callback ? { callback } : {}) };
    return queue.add('invoke', data, { jobId: id, ...opts });
  };
  return { queue, worker, done, add, async close() { await worker.close(); conn.disconnect(); await queue.obliterate({ force: true }); await queue.close(); } };
}

function deps(): SettleDeps & { dl: DeadLetters; cb: CallbackSender } {
  const dl = new DeadLetters(redis, createRetryKeys(r.prefix('dl')));
  const cb = new CallbackSender({ log, baseDelayMs: 5 });
  return { deadLetters: dl, callbacks: cb, log, dl, cb };
}

test('a failing async invocation is retried with backoff until it succeeds, then calls back once', async () => {
  const d = deps();
  const h = await harness((_j, attempt) => (attempt < 3 ? 'function_crashed' : 'ok'), d);
  try {
    received.length = 0;
    await h.add('f.retry1', retryJobOptions({ attempts: 3, backoff: parseBackoff('exponential:5') }), receiverUrl);
    const job = await h.done('f.retry1');
    assert.equal(await job.getState(), 'completed');
    assert.equal(job.attemptsMade, 3, 'two failed attempts, then the good one');
    assert.equal((job.returnvalue as InvocationOutcome).ok, true);
    assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 5 });
    assert.equal(await d.dl.count('f'), 0);
    await d.cb.close();
    assert.equal(received.length, 1);
    assert.equal(received[0]!.status, 'succeeded');
    assert.equal(received[0]!.attempts, 3);
    assert.deepEqual(received[0]!.result, { fine: true });
  } finally {
    await h.close();
  }
});

test('attempts run out: dead letter with event, error, attempts; listed, replayed and dropped over HTTP', async () => {
  const d = deps();
  let healed = false;
  const h = await harness(() => (healed ? 'ok' : 'function_error'), d);
  try {
    received.length = 0;
    await h.add('f.dead1', retryJobOptions({ attempts: 2, backoff: parseBackoff('fixed:1') }), receiverUrl);
    await h.add('f.dead2', retryJobOptions({ attempts: 2, backoff: parseBackoff('fixed:1') }));
    for (const id of ['f.dead1', 'f.dead2']) {
      const job = await h.done(id);
      assert.equal(await job.getState(), 'completed', 'the final failure completes the job with its outcome');
      assert.equal((job.returnvalue as InvocationOutcome).error?.code, 'function_error');
    }
    await d.cb.close();
    assert.equal(received.length, 1);
    assert.equal(received[0]!.status, 'failed');
    assert.match(received[0]!.deadLetterId ?? '', /^\d+-\d+$/);

    const app = new Hono();
    app.onError(onError);
    let replayed = 0;
    app.route('/', deadLetterRoutes({ deadLetters: d.dl, replay: async (l) => { const id = `f.replay${++replayed}`; await h.add(id, {}, l.callback); return id; } }));
    const list = (await (await app.request('/v1/functions/f/dead-letters')).json()) as { count: number; deadLetters: Array<{ id: string; invocationId: string; event: unknown; error: { code: string }; attempts: number; logs: string; callback?: string }> };
    assert.equal(list.count, 2);
    assert.deepEqual(list.deadLetters.map((l) => [l.invocationId, l.attempts, l.error.code]), [['f.dead1', 2, 'function_error'], ['f.dead2', 2, 'function_error']]);
    assert.deepEqual(list.deadLetters[0]!.event, { n: 'f.dead1' });
    assert.equal(list.deadLetters[0]!.callback, receiverUrl);
    assert.equal(list.deadLetters[0]!.logs, 'log line\n');

    healed = true;
    const rep = await app.request(`/v1/functions/f/dead-letters/${list.deadLetters[0]!.id}/replay`, { method: 'POST' });
    assert.equal(rep.status, 202);
    const newId = ((await rep.json()) as { id: string }).id;
    assert.equal(((await h.done(newId)).returnvalue as InvocationOutcome).ok, true);
    await d.cb.close();
    assert.equal(received.at(-1)!.status, 'succeeded', 'the replay keeps the callback');

    const del = await app.request(`/v1/functions/f/dead-letters/${list.deadLetters[1]!.id}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal(await d.dl.count('f'), 0);
    for (const [method, url, status] of [['DELETE', `/v1/functions/f/dead-letters/${list.deadLetters[1]!.id}`, 404], ['POST', `/v1/functions/f/dead-letters/${list.deadLetters[0]!.id}/replay`, 404], ['DELETE', '/v1/functions/f/dead-letters/nonsense', 400], ['GET', '/v1/functions/f/dead-letters?limit=0', 400]] as const) {
      const res = await app.request(url, { method });
      assert.equal(res.status, status, `${method} ${url}`);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /dead-letters|limit/);
    }
  } finally {
    await h.close();
  }
});

test('failures a retry cannot fix go to the dead letters at once; jobs BullMQ fails for good too', async () => {
  const d = deps();
  const h = await harness((job) => {
    if ((job.data as { event: { n: string } }).event.n === 'f.throws') throw new Error('processor blew up');
    return 'not_found';
  }, d);
  try {
    await h.add('f.gone', retryJobOptions({ attempts: 5, backoff: parseBackoff('fixed:1') }));
    await h.add('f.throws', { attempts: 1 });
    assert.equal((await h.done('f.gone')).attemptsMade, 1, 'not_found is not retried');
    assert.equal(await (await h.done('f.throws')).getState(), 'failed');
    for (let i = 0; i < 100 && (await d.dl.count('f')) < 2; i++) await new Promise((res) => setTimeout(res, 20));
    const letters = await d.dl.list('f');
    assert.deepEqual(letters.map((l) => [l.invocationId, l.error.code]).sort(), [['f.gone', 'not_found'], ['f.throws', 'function_crashed']]);
    await d.dl.purge('f');
    assert.equal(await d.dl.count('f'), 0);
  } finally {
    await h.close();
  }
});

test('callbacks: 5xx and 429 are retried within the bound, 4xx and unreachable receivers are final', async () => {
  const cb = new CallbackSender({ log, baseDelayMs: 5, attempts: 3, timeoutMs: 2000 });
  const p = { id: 'f.cb', function: 'f', version: 1, status: 'succeeded' as const, attempts: 1, coldStart: false, timings: { queueWaitMs: 0, bootMs: 0, initMs: 0, handlerMs: 0, totalMs: 0 }, logs: '' };
  received.length = 0;
  answers = [500, 429];
  assert.deepEqual(await cb.deliver(receiverUrl, p), { ok: true, tries: 3, status: 200 });
  answers = [404];
  assert.deepEqual(await cb.deliver(receiverUrl, p), { ok: false, tries: 1, status: 404 });
  answers = [];
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const miss = await cb.deliver(deadUrl, p);
  assert.equal(miss.ok, false);
  assert.equal(miss.tries, 3);
  assert.ok(miss.error);
  assert.equal(received.length, 1);
  assert.equal(checkCallbackUrl('http://127.0.0.1:9/x'), 'http://127.0.0.1:9/x');
  assert.throws(() => checkCallbackUrl('ftp://host/x'), { code: 'invalid_argument' });
  assert.throws(() => checkCallbackUrl('not a url'), /X-Jiffy-Callback/);
});

test('retry settings parse from flags and validate in a settings schema', () => {
  const schema = z.object({ ...retryFields });
  assert.deepEqual(schema.parse({}), { attempts: 1, backoff: { type: 'exponential', delayMs: 1000 } });
  assert.deepEqual(schema.parse({ attempts: '4', backoff: 'fixed:250' }), { attempts: 4, backoff: { type: 'fixed', delayMs: 250 } });
  assert.deepEqual(parseBackoff('exponential'), { type: 'exponential', delayMs: 1000 });
  assert.equal(schema.safeParse({ backoff: 'linear:5' }).success, false);
  assert.equal(schema.safeParse({ attempts: 0 }).success, false);
  assert.throws(() => parseBackoff('fixed:-1'), /fixed:MS or exponential:MS/);
});
