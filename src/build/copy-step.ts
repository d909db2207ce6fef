import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { invalid } from '../errors.js';
import { unpackLayer } from '../archive/unpack.js';
import { MediaTypes, type ImageConfig, type ImageManifest } from '../images/types.js';
import { saveState, type BuildState } from './build-cache.js';
import { expandVars, type Instruction } from './dockerfile.js';
import { hashLayerFiles, resolveCopy, type CopyFlags, type LayerFile } from './copy-sources.js';
import { writeLayerBlob } from './layer-blob.js';
import { metaStep, varsKey, type StepContext } from './builder.js';

type CopyIns = Extract<Instruction, { kind: 'COPY' | 'ADD' }>;

/**
 * COPY / ADD: one new layer holding the copied files plus their parent directories (with the
 * modes the image already has for them, so `COPY x /tmp/` keeps /tmp 1777). ADD also unpacks
 * local tar archives (plain or gzip) into the destination, as Docker does; URLs are refused.
 */
export async function copyStep(ctx: StepContext, state: BuildState, ins: CopyIns): Promise<{ state: BuildState; cached: boolean }> {
  const x = (s: string) => expandVars(s, ctx.vars);
  const sources = ins.sources.map(x);
  const wd = state.config.config?.WorkingDir || '/';
  const rawDest = x(ins.dest);
  const destIsDir = rawDest.endsWith('/') || rawDest === '.' || sources.length > 1 || sources.some((s) => /[*?[]/.test(s));
  const dest = path.posix.resolve(wd, rawDest) + (destIsDir ? '/' : '');
  const flags: CopyFlags = { ...(await parseChown(ins.chown ? x(ins.chown) : undefined)), chmod: ins.chmod ? Number.parseInt(ins.chmod, 8) : undefined };
  const tmpDirs: string[] = [];
  try {
    const files = await collectFiles(ctx, ins.kind, sources, dest, flags, tmpDirs);
    const spec = JSON.stringify({ kind: ins.kind, sources, dest, chown: ins.chown ?? null, chmod: ins.chmod ?? null });
    const key = ctx.cache.key(state.digest, spec, `${await hashLayerFiles(files)}\n${varsKey(ctx)}`);
    const hit = ctx.opts.noCache ? undefined : await ctx.cache.get(key);
    if (hit) return { state: hit, cached: true };
    const parents = await parentDirs(ctx, state, files);
    const blob = await writeLayerBlob(ctx.store.content, [...parents, ...files]);
    const createdBy = `${ins.kind} ${sources.join(' ')} ${rawDest} # buildkit`;
    const next = await appendLayerState(ctx, state, blob, createdBy);
    await ctx.cache.put(key, next.digest!);
    return { state: next, cached: false };
  } finally {
    for (const d of tmpDirs) await fs.rm(d, { recursive: true, force: true });
  }
}

/**
 * WORKDIR: sets the working directory and, like Docker, creates it when the image lacks it — as
 * a small layer, so containers (and later RUN steps) can chdir into it.
 */
export async function workdirStep(ctx: StepContext, state: BuildState, wd: string): Promise<BuildState> {
  const rel = wd.replace(/^\/+/, '').replace(/\/+$/, '');
  let next = state;
  if (rel && !(await statInLowers(await lowerDirs(ctx, state), rel))) {
    const dir: LayerFile = { path: rel, type: 'dir', mode: 0o755, uid: 0, gid: 0 };
    const blob = await writeLayerBlob(ctx.store.content, [...(await parentDirs(ctx, state, [dir])), dir]);
    next = await appendLayerState(ctx, state, blob, `WORKDIR ${wd}`);
    const config = { ...next.config, config: { ...(next.config.config ?? {}), WorkingDir: wd } };
    return saveState(ctx.store.content, next.manifest, config);
  }
  return metaStep(ctx, next, `WORKDIR ${wd}`, () => ({ WorkingDir: wd }));
}

/** `state` + one uncompressed OCI layer blob + its history entry. */
export async function appendLayerState(
  ctx: Pick<StepContext, 'store' | 'created'>,
  state: BuildState,
  blob: { digest: string; diffId: string; size: number },
  createdBy: string,
): Promise<BuildState> {
  const prev = state.config;
  const config: ImageConfig = {
    ...prev,
    created: ctx.created,
    rootfs: { type: 'layers', diff_ids: [...prev.rootfs.diff_ids, blob.diffId] },
    history: [...(prev.history ?? []), { created: ctx.created, created_by: createdBy }],
  };
  const manifest: ImageManifest = {
    ...state.manifest,
    layers: [...state.manifest.layers, { mediaType: MediaTypes.ociLayer, digest: blob.digest, size: blob.size }],
  };
  return saveState(ctx.store.content, manifest, config);
}

async function collectFiles(ctx: StepContext, kind: 'COPY' | 'ADD', sources: string[], dest: string, flags: CopyFlags, tmpDirs: string[]): Promise<LayerFile[]> {
  const contextDir = ctx.opts.contextDir;
  if (kind === 'COPY') return resolveCopy(contextDir, sources, dest, flags, ctx.ignore);
  const out: LayerFile[] = [];
  for (const src of sources) {
    const archive = await archiveKind(path.join(contextDir, src.replace(/^\/+/, '')));
    if (!archive) {
      out.push(...(await resolveCopy(contextDir, [src], dest, flags, ctx.ignore)));
      continue;
    }
    // Unpacked with the layer unpacker: it refuses entries that would escape the directory.
    const dir = path.join(ctx.store.paths.ingest, `add-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    tmpDirs.push(dir);
    await unpackLayer(createReadStream(path.join(contextDir, src.replace(/^\/+/, ''))), dir);
    out.push(...(await resolveCopy(dir, ['.'], dest.endsWith('/') ? dest : `${dest}/`, flags)));
  }
  return out;
}

/** 'tar' for a local tar or gzip'd tar (by magic), undefined for anything else; xz/bzip2 refused. */
async function archiveKind(file: string): Promise<'tar' | undefined> {
  const fh = await fs.open(file, 'r').catch(() => null);
  if (!fh) return undefined;
  try {
    if (!(await fh.stat()).isFile()) return undefined;
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'tar';
    if (bytesRead >= 262 && buf.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    if (buf.subarray(0, 3).toString('latin1') === 'BZh' || buf.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
      throw invalid(`ADD ${path.basename(file)}: bzip2/xz archives are not supported by jiffy build; decompress it to .tar or .tar.gz first`);
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

/** `--chown=uid[:gid]` (numbers, or root); names other than root would need the image's /etc/passwd. */
async function parseChown(spec: string | undefined): Promise<{ uid: number; gid: number }> {
  if (!spec) return { uid: 0, gid: 0 };
  const [u, g] = spec.split(':');
  const num = (s: string) => (s === 'root' ? 0 : /^\d+$/.test(s) ? Number(s) : NaN);
  const uid = num(u);
  const gid = g === undefined ? uid : num(g);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw invalid(`--chown=${spec}: only numeric ids (or root) are supported, e.g. --chown=1000:1000`);
  }
  return { uid, gid };
}

/** Parent directories of the copied files that the layer must carry, with the image's own modes. */
async function parentDirs(ctx: StepContext, state: BuildState, files: LayerFile[]): Promise<LayerFile[]> {
  const have = new Set(files.map((f) => f.path));
  const need = new Set<string>();
  for (const f of files) {
    for (let d = path.posix.dirname(f.path); d !== '.' && d !== '/' && d !== ''; d = path.posix.dirname(d)) {
      if (!have.has(d)) need.add(d);
    }
  }
  if (need.size === 0) return [];
  const lowers = await lowerDirs(ctx, state);
  const out: LayerFile[] = [];
  for (const d of [...need].sort()) {
    const st = await statInLowers(lowers, d);
    out.push(st ? { path: d, type: 'dir', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid } : { path: d, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
  }
  return out;
}

/** The state's unpacked layer dirs, top first (unpacking any that are missing). */
async function lowerDirs(ctx: StepContext, state: BuildState): Promise<string[]> {
  const dirs: string[] = [];
  let parent: string | null = null;
  for (let i = 0; i < state.manifest.layers.length; i++) {
    const l = state.manifest.layers[i];
    const r = await ctx.store.layers.ensure({ blobDigest: l.digest, diffId: state.config.rootfs.diff_ids[i], parentChainId: parent, mediaType: l.mediaType });
    parent = r.chainId;
    dirs.unshift(r.dir);
  }
  return dirs;
}

async function statInLowers(lowers: string[], rel: string): Promise<{ mode: number; uid: number; gid: number } | undefined> {
  for (const dir of lowers) {
    const st = await fs.lstat(path.join(dir, rel)).catch(() => null);
    if (!st) continue;
    return st.isDirectory() ? st : undefined; // a whiteout or a non-directory hides lower ones
  }
  return undefined;
}
