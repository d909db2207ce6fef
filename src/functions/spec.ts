import { z } from 'zod';
import { JiffyError } from '../errors.js';
import { retryFields } from '../retries/spec.js';
import { triggerFields } from '../triggers/spec.js';

/**
 * A function's settings (what `jiffy deploy` flags and `PUT /v1/functions/:name` query params set)
 * and the immutable record of one deployed version. Validation lives here so the CLI, the gateway
 * and the worker agree on defaults and limits.
 */
export const RUNTIMES = ['node', 'python', 'exec'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** Function names: DNS-label-like, so they are safe in Redis keys, BullMQ queue names and image refs. */
export const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const settingsSchema = z.object({
  runtime: z.enum(RUNTIMES),
  handler: z.string().min(1).max(256).optional(),
  memoryMb: z.coerce.number().int().min(16).max(65536).default(256),
  cpus: z.coerce.number().min(0.05).max(64).default(1),
  timeoutS: z.coerce.number().min(0.05).max(900).default(30),
  env: z.record(z.string().regex(envName, 'environment variable names are [A-Za-z_][A-Za-z0-9_]*'), z.string()).default({}),
  concurrency: z.coerce.number().int().min(1).max(1000).default(1),
  minWarm: z.coerce.number().int().min(0).max(100).default(0),
  maxInstances: z.coerce.number().int().min(1).max(1000).default(10),
  idleTimeoutS: z.coerce.number().min(0.05).max(86400).default(300),
  network: z.enum(['none', 'host']).default('none'),
  ...triggerFields,
  ...retryFields,
});

/** Settings after validation, defaults filled in (handler resolved per runtime). */
export type FunctionSettings = z.output<typeof settingsSchema> & { handler: string };

/** One immutable deployed version; `NAME` means the newest, `NAME@N` this one. */
export interface FunctionVersion {
  name: string;
  version: number;
  settings: FunctionSettings;
  /** Image id (config digest) and the ref it was tagged with in the store. */
  image: { id: string; ref: string };
  /** diff_id of the code layer (sha256 of the uncompressed tar). */
  codeDiffId: string;
  createdAt: string;
}

const DEFAULT_HANDLER: Record<Runtime, string> = { node: 'index.handler', python: 'main.handler', exec: './handler' };

/** Validates raw settings (strings from a query or flags, or JSON); throws invalid_argument naming the field. */
export function parseSettings(raw: unknown): FunctionSettings {
  const r = settingsSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || 'settings';
    throw new JiffyError('invalid_argument', `invalid function setting "${field}": ${issue.message}`, {
      details: { field },
    });
  }
  const s = r.data;
  const handler = s.handler ?? DEFAULT_HANDLER[s.runtime];
  if (s.runtime !== 'exec' && !/^[A-Za-z0-9_./-]+\.[A-Za-z_$][A-Za-z0-9_$]*$/.test(handler)) {
    throw new JiffyError('invalid_argument', `invalid function setting "handler": expected FILE.EXPORT like ${DEFAULT_HANDLER[s.runtime]}, got ${JSON.stringify(handler)}`, { details: { field: 'handler' } });
  }
  if (s.runtime === 'python' && s.concurrency > 1) {
    // The python shim runs handlers one at a time (no GIL-free parallelism to gain); scale out instead.
    throw new JiffyError('invalid_argument', `invalid function setting "concurrency": python instances run one invocation at a time; raise --max-instances instead`, { details: { field: 'concurrency' } });
  }
  if (s.minWarm > s.maxInstances) {
    throw new JiffyError('invalid_argument', `invalid function setting "minWarm": ${s.minWarm} is above maxInstances ${s.maxInstances}`, { details: { field: 'minWarm' } });
  }
  return { ...s, handler };
}

/** Checks a function name; throws invalid_argument saying what is allowed. */
export function checkName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new JiffyError('invalid_argument', `invalid function name ${JSON.stringify(name)}: use 1-63 of a-z 0-9 _ - starting with a letter or digit`, { details: { field: 'name' } });
  }
  return name;
}

/** Splits "NAME" or "NAME@N" into name and optional version. */
export function parseFunctionRef(ref: string): { name: string; version?: number } {
  const at = ref.lastIndexOf('@');
  if (at < 0) return { name: checkName(ref) };
  const v = Number(ref.slice(at + 1));
  if (!Number.isInteger(v) || v < 1) {
    throw new JiffyError('invalid_argument', `invalid function version in ${JSON.stringify(ref)}: use NAME@N with N ≥ 1`);
  }
  return { name: checkName(ref.slice(0, at)), version: v };
}

/** Total invocations a function may run at once (sync calls past this get 429). */
export function capacity(s: FunctionSettings): number {
  // exec runs every invocation in its own short-lived container: one per "instance".
  return s.runtime === 'exec' ? s.maxInstances : s.maxInstances * s.concurrency;
}
