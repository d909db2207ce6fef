import { Hono } from 'hono';
import { JiffyError } from '../errors.js';
import { checkName } from '../functions/spec.js';
import type { DeadLetter, DeadLetters } from './dead-letters.js';

/** Re-enqueues a dead letter's event as a new async invocation of the function's newest version; returns its id. */
export type ReplayFn = (letter: DeadLetter) => Promise<string>;

/**
 * `GET /v1/functions/:name/dead-letters[?limit=&after=]`, `POST …/dead-letters/:id/replay` (202 with
 * the new invocation id; the letter is dropped once the new job is queued) and
 * `DELETE …/dead-letters/:id`.
 */
export function deadLetterRoutes(d: { deadLetters: DeadLetters; replay: ReplayFn }): Hono {
  const r = new Hono();
  r.get('/v1/functions/:name/dead-letters', async (c) => {
    const name = checkName(c.req.param('name'));
    const limitRaw = c.req.query('limit');
    const limit = limitRaw === undefined ? 100 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new JiffyError('invalid_argument', `limit ${JSON.stringify(limitRaw)}: use 1 to 1000`, { details: { field: 'limit' } });
    const letters = await d.deadLetters.list(name, { limit, after: c.req.query('after') });
    return c.json({ function: name, count: await d.deadLetters.count(name), deadLetters: letters });
  });
  r.post('/v1/functions/:name/dead-letters/:id/replay', async (c) => {
    const name = checkName(c.req.param('name'));
    const letter = await d.deadLetters.get(name, c.req.param('id'));
    const id = await d.replay(letter);
    await d.deadLetters.drop(name, letter.id);
    return c.json({ replayed: letter.id, id, status: 'queued', url: `/v1/invocations/${id}` }, 202, { 'x-jiffy-invocation-id': id });
  });
  r.delete('/v1/functions/:name/dead-letters/:id', async (c) => {
    const name = checkName(c.req.param('name'));
    await d.deadLetters.drop(name, c.req.param('id'));
    return c.json({ dropped: c.req.param('id') });
  });
  return r;
}
