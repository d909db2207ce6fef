import { JiffyError } from '../errors.js';
import type { InvocationJob, InvocationOutcome } from '../functions/outcome.js';
import { readableResult } from '../gateway/responses.js';
import type { Logger } from '../log.js';

/** Checks a callback URL given with an async invoke (X-Jiffy-Callback or ?callback=). */
export function checkCallbackUrl(raw: string): string {
  let u: URL;
  try { u = new URL(raw); } catch {
    throw new JiffyError('invalid_argument', `callback ${JSON.stringify(raw)} is not a URL; pass an absolute http(s) URL in X-Jiffy-Callback or ?callback=`, { details: { field: 'callback' } });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new JiffyError('invalid_argument', `callback URL must be http or https, got ${u.protocol}`, { details: { field: 'callback' } });
  }
  if (raw.length > 2048) throw new JiffyError('invalid_argument', 'callback URL is longer than 2048 characters', { details: { field: 'callback' } });
  return u.toString();
}

/** What a callback URL receives (POST, JSON): the same fields as GET /v1/invocations/:id. */
export interface CallbackPayload {
  id: string;
  function: string;
  version: number;
  status: 'succeeded' | 'failed';
  result?: unknown;
  resultEncoding?: 'base64';
  error?: InvocationOutcome['error'];
  attempts: number;
  /** Set when the failure was kept as a dead letter (replay it with this id). */
  deadLetterId?: string;
  coldStart: boolean;
  timings: InvocationOutcome['timings'];
  logs: string;
}

/** The callback body for an invocation's final outcome. */
export function callbackPayload(data: InvocationJob, o: InvocationOutcome, attempts: number, deadLetterId?: string): CallbackPayload {
  const p: CallbackPayload = { id: o.id, function: data.name, version: o.functionVersion, status: o.ok ? 'succeeded' : 'failed', attempts, coldStart: o.coldStart, timings: o.timings, logs: o.logs };
  if (o.ok) Object.assign(p, readableResult(o));
  else p.error = o.error;
  if (deadLetterId) p.deadLetterId = deadLetterId;
  return p;
}

export interface CallbackOptions {
  log: Logger;
  /** Tries per callback (default 3). */
  attempts?: number;
  /** Wait before the 2nd try; ×4 per further try (default 250 ms). */
  baseDelayMs?: number;
  /** Per-try timeout (default 5 s). */
  timeoutMs?: number;
}

export interface Delivery {
  ok: boolean;
  tries: number;
  status?: number;
  error?: string;
}

/**
 * Delivers callbacks by POST with a bounded retry: network errors, 5xx and 429 are tried again,
 * other 4xx answers are final (the receiver said no). Deliveries run beside the job, so a slow
 * receiver never holds a worker slot; `close()` waits for the ones in flight.
 */
export class CallbackSender {
  private readonly inflight = new Set<Promise<Delivery>>();

  constructor(private readonly o: CallbackOptions) {}

  /** Starts a delivery and returns at once. */
  send(url: string, payload: CallbackPayload): void {
    const p = this.deliver(url, payload).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Delivers one callback, retrying within the bound; never throws. */
  async deliver(url: string, payload: CallbackPayload): Promise<Delivery> {
    const tries = this.o.attempts ?? 3;
    let last: Delivery = { ok: false, tries: 0 };
    for (let i = 0; i < tries; i++) {
      if (i) await new Promise((r) => setTimeout(r, (this.o.baseDelayMs ?? 250) * 4 ** (i - 1)));
      last = await this.post(url, payload, i + 1);
      if (last.ok || (last.status !== undefined && last.status < 500 && last.status !== 429)) break;
    }
    if (!last.ok) this.o.log.warn({ url, invocation: payload.id, ...last }, 'invocation callback was not delivered');
    return last;
  }

  private async post(url: string, payload: CallbackPayload, tries: number): Promise<Delivery> {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'jiffy-callback', 'x-jiffy-invocation-id': payload.id },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
        redirect: 'manual',
      });
      await res.arrayBuffer().catch(() => undefined);
      return { ok: res.status >= 200 && res.status < 300, tries, status: res.status };
    } catch (e) {
      return { ok: false, tries, error: (e as Error).message };
    }
  }

  /** Waits for deliveries in flight. */
  async close(): Promise<void> {
    await Promise.all([...this.inflight]);
  }
}
