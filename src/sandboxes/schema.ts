/**
 * The HTTP API's request bodies (zod), in the API's own words (memory in MB, ttl and timeout in
 * seconds, env as an object or K=V list), and their translation to SandboxManager options.
 */
import { z } from 'zod';
import { normalizeCapabilities } from '../containers/security.js';
import { JiffyError } from '../errors.js';
import type { SandboxCreateOptions, SandboxExecOptions } from './types.js';

const env = z.union([z.record(z.string(), z.string()), z.array(z.string())]).optional();

/** POST /v1/sandboxes */
export const createBody = z.object({
  image: z.string().min(1).optional(),
  from: z.string().min(1).optional(),
  memory: z.number().int().min(16).max(1024 * 1024).optional(),
  cpus: z.number().positive().max(1024).optional(),
  network: z.union([z.boolean(), z.enum(['on', 'off'])]).optional(),
  ttl: z.number().int().min(1).max(86_400).optional(),
  env,
  count: z.number().int().min(1).max(64).optional(),
  capabilities: z.array(z.string().min(1)).max(64).optional(),
}).strict();

/** POST /v1/sandboxes/:id/exec — `cmd` as argv, or a string run by `sh -c`; stdin as text or base64. */
export const execBody = z.object({
  cmd: z.union([z.array(z.string()).min(1), z.string().min(1)]),
  env,
  cwd: z.string().min(1).optional(),
  stdin: z.string().optional(),
  stdinBase64: z.string().optional(),
  timeout: z.number().min(0).max(86_400).optional(),
  maxOutputBytes: z.number().int().min(0).optional(),
}).strict();

/** POST /v1/sandboxes/:id/snapshot */
export const snapshotBody = z.object({ ref: z.string().min(1).optional(), message: z.string().optional() }).strict();

/** Parse `body` with `schema`, or throw invalid_argument naming the field and the problem. */
export function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue.path.join('.') || '(body)';
  throw new JiffyError('invalid_argument', `invalid ${what}: ${field}: ${issue.message}`, { details: { field } });
}

/** `{K: V}` or `["K=V"]` → `["K=V"]`, checked. */
export function envList(e: Record<string, string> | string[] | undefined): string[] | undefined {
  if (!e) return undefined;
  const list = Array.isArray(e) ? e : Object.entries(e).map(([k, v]) => `${k}=${v}`);
  for (const kv of list) {
    if (kv.indexOf('=') <= 0) throw new JiffyError('invalid_argument', `invalid env entry ${JSON.stringify(kv)}: use KEY=VALUE`, { details: { field: 'env' } });
  }
  return list;
}

/** The create body as SandboxManager options. */
export function toCreateOptions(b: z.infer<typeof createBody>): SandboxCreateOptions {
  if (b.image && b.from) throw new JiffyError('invalid_argument', 'give either image or from (a snapshot), not both', { details: { field: 'from' } });
  return {
    image: b.image, from: b.from, memoryMb: b.memory, cpus: b.cpus, ttlS: b.ttl, count: b.count,
    network: b.network === true || b.network === 'on', env: envList(b.env),
    capabilities: b.capabilities && normalizeCapabilities(b.capabilities),
  };
}

/** The exec body as SandboxManager exec options. */
export function toExecOptions(b: z.infer<typeof execBody>): SandboxExecOptions {
  if (b.stdin !== undefined && b.stdinBase64 !== undefined) {
    throw new JiffyError('invalid_argument', 'give stdin (text) or stdinBase64, not both', { details: { field: 'stdin' } });
  }
  const stdin = b.stdinBase64 !== undefined ? Buffer.from(b.stdinBase64, 'base64') : b.stdin;
  return {
    cmd: typeof b.cmd === 'string' ? ['/bin/sh', '-c', b.cmd] : b.cmd,
    env: envList(b.env), cwd: b.cwd, stdin, timeoutS: b.timeout, maxOutputBytes: b.maxOutputBytes,
  };
}
