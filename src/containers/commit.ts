/**
 * `commit`: a container's changes become ONE new layer on top of its image. The upper dir is
 * already in overlay form, so it is copied as is (`cp -a` keeps whiteout devices and the opaque
 * xattr) into a staging dir inside the layer store — with a running container frozen (cgroup
 * freezer) only for that copy — then the staged tree is written as an OCI layer tar (whiteouts as
 * `.wh.` entries, H3's deterministic tar writer) into the content store and adopted as the unpacked layer by `appendLayer`. So
 * committing costs O(size of the change), and booting the new image costs what any image costs.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { JiffyError } from '../errors.js';
import type { Image, ImageStore } from '../images/store.js';
import type { ContainerConfig } from '../images/types.js';
import { writeDiffLayer } from '../snapshots/diff.js';
import type { OverlaySnapshotter } from '../snapshots/snapshotter.js';
import { setFrozen } from './cgroup.js';
import type { ContainerRecord } from './types.js';

const run = promisify(execFile);

export interface CommitOptions {
  /** `name[:tag]` for the new image. */
  ref?: string;
  /** History comment (`-m`). */
  message?: string;
  author?: string;
  /** Dockerfile-style config changes (`-c`): CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL. */
  changes?: string[];
  /** Freeze a running container while its upper dir is copied (default true). */
  pause?: boolean;
}

/** Parse `-c` lines into a config patch on top of `base`. */
export function parseChanges(base: ContainerConfig, changes: string[]): Partial<ContainerConfig> {
  const patch: Partial<ContainerConfig> = {};
  for (const line of changes) {
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(line);
    if (!m) throw new JiffyError('invalid_argument', `bad --change ${JSON.stringify(line)}: use e.g. 'CMD ["sh"]' or 'ENV K=V'`);
    const [, instr, rest] = m;
    switch (instr.toUpperCase()) {
      case 'CMD': patch.Cmd = execForm(rest); break;
      case 'ENTRYPOINT': patch.Entrypoint = execForm(rest); break;
      case 'WORKDIR': patch.WorkingDir = rest.trim(); break;
      case 'USER': patch.User = rest.trim(); break;
      case 'ENV': patch.Env = mergeEnv(patch.Env ?? base.Env ?? [], rest); break;
      case 'LABEL': patch.Labels = { ...(patch.Labels ?? base.Labels ?? {}), ...keyValues(rest) }; break;
      default:
        throw new JiffyError('invalid_argument', `--change ${instr} is not supported: use CMD, ENTRYPOINT, ENV, WORKDIR, USER or LABEL`);
    }
  }
  return patch;
}

function execForm(s: string): string[] {
  const t = s.trim();
  if (t.startsWith('[')) {
    try {
      const v = JSON.parse(t) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    } catch { /* fall through to the error */ }
    throw new JiffyError('invalid_argument', `bad JSON array in --change: ${t}`);
  }
  return ['/bin/sh', '-c', t];
}

function keyValues(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const t = s.trim();
  if (!t.includes('=')) {
    const [k, ...v] = t.split(/\s+/);
    out[k] = v.join(' ');
    return out;
  }
  for (const kv of t.match(/(?:[^\s"]+|"[^"]*")+/g) ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new JiffyError('invalid_argument', `bad KEY=VALUE in --change: ${kv}`);
    out[kv.slice(0, i)] = kv.slice(i + 1).replace(/^"(.*)"$/, '$1');
  }
  return out;
}

function mergeEnv(env: string[], rest: string): string[] {
  const map = new Map(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  for (const [k, v] of Object.entries(keyValues(rest))) map.set(k, v);
  return [...map].map(([k, v]) => `${k}=${v}`);
}

/** Copy the upper dir (overlay form, xattrs and whiteouts kept) into a staging dir in the layer store. */
async function stageUpper(root: string, upper: string | undefined): Promise<string> {
  const stage = path.join(root, 'layers', `.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  await fs.mkdir(stage, { recursive: true });
  if (upper) await run('cp', ['-a', '--', `${upper}/.`, stage]);
  return stage;
}

/** Commit container `rec` (its snapshot in `snapshots`) as a new image in `store`. */
export async function commitContainer(
  store: ImageStore, snapshots: OverlaySnapshotter, rec: ContainerRecord, opts: CommitOptions = {},
): Promise<Image> {
  const base = await store.resolve(rec.imageId);
  const snap = await snapshots.get(rec.id);
  const freeze = rec.state.status === 'running' && opts.pause !== false;
  if (freeze) await setFrozen(rec.cgroupPath, true);
  let stage: string;
  try {
    stage = await stageUpper(snapshots.root, snap.upper);
  } finally {
    if (freeze) await setFrozen(rec.cgroupPath, false);
  }
  try {
    const { digest, size, diffId, mediaType } = await writeDiffLayer(store.content, stage);
    const configPatch = parseChanges(base.config.config ?? {}, opts.changes ?? []);
    const createdBy = [rec.path, ...rec.args].join(' ');
    return await store.appendLayer(
      base,
      { blobDigest: digest, diffId, size, mediaType, unpackedDir: stage },
      { created: new Date().toISOString(), created_by: createdBy, ...(opts.author ? { author: opts.author } : {}), ...(opts.message ? { comment: opts.message } : {}) },
      { configPatch, ref: opts.ref, author: opts.author },
    );
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}
