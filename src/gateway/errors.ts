import type { Context } from 'hono';
import { OUTCOME_STATUS, type OutcomeCode } from '../functions/outcome.js';

/**
 * The gateway's one HTTP exception type and its one mapping from error codes to statuses.
 * Library code throws JiffyError (its `code` is read the same way); invocation outcomes that
 * failed are thrown as HttpError carrying the outcome's code, details, logs and X-Jiffy headers.
 */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly code: string,
    message: string,
    readonly extra: { details?: Record<string, unknown>; headers?: Record<string, string>; body?: Record<string, unknown> } = {},
  ) {
    super(message);
  }
}

// Outcome codes (function_error 500, function_crashed/out_of_memory 502, …) share the JiffyError
// ones where they overlap (invalid_argument 400, not_found 404, resource_exhausted 429,
// deadline_exceeded 504, unavailable 503).
const STATUS: Record<string, number> = {
  ...OUTCOME_STATUS,
  unauthenticated: 401,
  permission_denied: 403,
  already_exists: 409,
  failed_precondition: 409,
  payload_too_large: 413,
};

/** HTTP status for a JiffyError or outcome code (anything unknown is 500). */
export function statusFor(code: string | undefined): number {
  return (code && STATUS[code as OutcomeCode]) || 500;
}

/** Hono `onError`: every error becomes `{error: {code, message, details?}}` with the mapped status. */
export function onError(err: Error, c: Context): Response {
  const e = err as Error & { code?: unknown; details?: Record<string, unknown>; extra?: HttpError['extra'] };
  const code = typeof e.code === 'string' && e.code in STATUS ? e.code : 'internal';
  const details = e instanceof HttpError ? e.extra.details : e.details;
  // A full store is the server's condition, not a "retry later" throttle: 507 Insufficient Storage.
  const status = details?.reason === 'store_full' ? 507 : statusFor(code);
  const message = code === 'internal' && !(e instanceof HttpError) ? `internal error: ${e.message}` : e.message;
  const body = { error: { code, message, ...(details ? { details } : {}) }, ...(e instanceof HttpError ? e.extra.body : {}) };
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(e instanceof HttpError ? e.extra.headers : {}) };
  return new Response(JSON.stringify(body), { status, headers });
}
