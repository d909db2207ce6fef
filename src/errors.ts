/**
 * One error type for all of Jiffy. `code` is stable and survives a process or queue boundary
 * (compare `code`, never `instanceof` alone); the gateway maps codes to HTTP statuses in one place.
 * Messages say what failed and what to do next.
 */
export type ErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'permission_denied'
  | 'unauthenticated'
  | 'deadline_exceeded'
  | 'unavailable'
  | 'data_loss'
  | 'payload_too_large'
  | 'internal';

export class JiffyError extends Error {
  override name = 'JiffyError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.details = options?.details;
  }
  readonly details?: Record<string, unknown>;

  /** Plain JSON form for crossing a process or queue boundary. */
  toJSON(): { name: string; code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }

  /** Rebuild from `toJSON()` output (or anything with code + message). */
  static fromJSON(v: { code?: string; message?: string; details?: Record<string, unknown> }): JiffyError {
    const code = (v.code ?? 'internal') as ErrorCode;
    return new JiffyError(code, v.message ?? 'unknown error', { details: v.details });
  }
}

/** True when `e` carries the given Jiffy error code (works across process boundaries). */
export function hasCode(e: unknown, code: ErrorCode): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

export const invalid = (msg: string, cause?: unknown) => new JiffyError('invalid_argument', msg, { cause });
export const notFound = (msg: string, cause?: unknown) => new JiffyError('not_found', msg, { cause });
export const precondition = (msg: string, cause?: unknown) =>
  new JiffyError('failed_precondition', msg, { cause });

/** True when `e`, or any error in its `cause` chain, is the file system being full (ENOSPC/EDQUOT). */
export function isNoSpace(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}

/**
 * A full store is not the caller's bad input and not corruption: `resource_exhausted` with
 * `details.reason = 'store_full'` (the gateway answers 507), saying what to free.
 */
export function storeFull(where: string, what: string, cause?: unknown): JiffyError {
  return new JiffyError(
    'resource_exhausted',
    `${what}: no space left on the file system of ${where} (the store is full); free space (jiffy prune, jiffy rmi IMAGE) or set JIFFY_ROOT to a larger file system, then retry`,
    { cause, details: { reason: 'store_full' } },
  );
}
