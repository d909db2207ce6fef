import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { invalid } from '../errors.js';
import { repoRoot } from '../paths.js';
import type { ProgressFn } from '../progress.js';
import { withFileLock } from '../content/lock.js';
import { ImageStore, type Image } from '../images/store.js';
import { buildImage } from './builder.js';
import { prepareContext, readRecipe, type RecipeFile } from './recipe-context.js';

const run = promisify(execFile);

/** The runtime images Jiffy builds offline from this machine's own files. */
export type RuntimeName = 'busybox' | 'node' | 'python';
export const RUNTIME_NAMES: RuntimeName[] = ['busybox', 'node', 'python'];

/** Label recording which recipe (and host inputs) an image was built from. */
export const RECIPE_LABEL = 'org.jiffy.runtime.recipe';

export interface RuntimeBuildOptions {
  onProgress?: ProgressFn;
  /** Step lines of the build (`Step 2/7 : COPY …`). */
  log?: (line: string) => void;
  /** Rebuild even when an up-to-date image is present (the build cache still applies). */
  force?: boolean;
}

/** `runtime-images/<name>` in the repository. */
export function recipeDir(name: RuntimeName): string {
  return path.join(repoRoot(), 'runtime-images', name);
}

/**
 * The machine-wide cache store runtime images are built in once and linked from into every other
 * store (tests make a fresh JIFFY_ROOT each; building node there every time would cost seconds).
 * $JIFFY_RUNTIME_CACHE overrides the location; `off` disables it.
 */
export function runtimeCacheRoot(): string | null {
  const v = process.env.JIFFY_RUNTIME_CACHE;
  if (v === 'off' || v === '0') return null;
  return v || path.join(os.tmpdir(), 'jiffy-runtime-cache');
}

/**
 * Makes sure runtime image `name` (with its tags, e.g. node:20 and node:latest) is in `store` and
 * built from the current recipe: a fast no-op when it is, otherwise it is linked in from the
 * machine-wide cache store, which builds it first if needed. Safe to call from several processes
 * at once (a lock per store and image; the loser finds the winner's image).
 */
export async function ensureRuntimeImage(store: ImageStore, name: RuntimeName, onProgress?: ProgressFn): Promise<Image> {
  return ensureWith(store, name, { onProgress });
}

/**
 * Resolves `ref` in the store; when it is missing and names a runtime image (busybox, node,
 * python, any of their tags), builds that image first. Used wherever a user names an image to
 * start from (`FROM`, sandboxes), so a fresh store works without `jiffy build-runtime`.
 */
export async function resolveImage(store: ImageStore, ref: string, onProgress?: ProgressFn): Promise<Image> {
  try {
    return await store.resolve(ref);
  } catch (e) {
    const runtime = RUNTIME_NAMES.find((n) => ref === n || ref.startsWith(`${n}:`));
    if (!runtime) throw e;
    await ensureRuntimeImage(store, runtime, onProgress);
    return store.resolve(ref);
  }
}

async function ensureWith(store: ImageStore, name: RuntimeName, opts: RuntimeBuildOptions): Promise<Image> {
  const recipe = await loadRecipe(name);
  const fp = await recipeFingerprint(name);
  if (!opts.force) {
    const have = await upToDate(store, recipe, fp);
    if (have) return have;
  }
  const lock = path.join(store.paths.run, `runtime-${name}.lock`);
  await fs.mkdir(store.paths.run, { recursive: true });
  return withFileLock(lock, async () => {
    if (!opts.force) {
      const have = await upToDate(store, recipe, fp);
      if (have) return have;
    }
    const cacheRoot = runtimeCacheRoot();
    if (!cacheRoot) return buildRuntimeImage(store, name, opts);
    if (path.resolve(cacheRoot) === store.paths.root) return rebuildInCache(store, name, recipe, opts);
    const cache = await ImageStore.open(cacheRoot);
    const built = await ensureWith(cache, name, opts);
    return importImage(cache, built, store, recipe.tags, opts.onProgress);
  }, 30 * 60_000);
}

/** Builds into the cache store and drops the image it replaces, so old recipes do not pile up there. */
async function rebuildInCache(cache: ImageStore, name: RuntimeName, recipe: RecipeFile, opts: RuntimeBuildOptions): Promise<Image> {
  const old = await cache.resolve(recipe.tags[0]).catch(() => undefined);
  const img = await buildRuntimeImage(cache, name, opts);
  if (old && old.manifestDigest !== img.manifestDigest) {
    const left = (await cache.resolve(old.manifestDigest).catch(() => undefined))?.refs ?? [];
    if (left.length === 0) await cache.remove(old.manifestDigest).catch(() => undefined);
  }
  return img;
}

/**
 * Builds runtime image `name` into `store` from its recipe: fills a temp build context from host
 * files (context.json), then runs the recipe's Dockerfile with fixed timestamps
 * ($SOURCE_DATE_EPOCH or 0), so the same inputs give the same digests.
 */
export async function buildRuntimeImage(store: ImageStore, name: RuntimeName, opts: RuntimeBuildOptions = {}): Promise<Image> {
  const dir = recipeDir(name);
  const recipe = await loadRecipe(name);
  const ctxDir = path.join(store.paths.ingest, `runtime-${name}-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  await fs.mkdir(ctxDir, { recursive: true, mode: 0o755 });
  try {
    opts.log?.(`Preparing the build context of ${recipe.tags[0]} from host files (runtime-images/${name}/context.json)`);
    await prepareContext(recipe, dir, ctxDir);
    const dockerfile = await fs.readFile(path.join(dir, 'Dockerfile'), 'utf8');
    const { image } = await buildImage(store, {
      contextDir: ctxDir,
      dockerfile,
      tags: recipe.tags,
      created: epochTime(),
      labels: { [RECIPE_LABEL]: await recipeFingerprint(name) },
      resolveBase: async (ref) => {
        const base = RUNTIME_NAMES.find((n) => n !== name && (recipe.requires ?? []).includes(n) && ref.startsWith(`${n}:`));
        if (base) await ensureWith(store, base, { ...opts, force: false });
        return store.resolve(ref);
      },
      log: opts.log,
      onProgress: opts.onProgress,
    });
    return image;
  } finally {
    await fs.rm(ctxDir, { recursive: true, force: true });
  }
}

/** $SOURCE_DATE_EPOCH (seconds) or the Unix epoch, as RFC 3339. */
export function epochTime(): string {
  const s = Number(process.env.SOURCE_DATE_EPOCH);
  return new Date(Number.isFinite(s) && s > 0 ? s * 1000 : 0).toISOString();
}

async function loadRecipe(name: RuntimeName): Promise<RecipeFile> {
  if (!RUNTIME_NAMES.includes(name)) throw invalid(`unknown runtime image "${name}"; choose one of ${RUNTIME_NAMES.join(', ')}`);
  return readRecipe(recipeDir(name));
}

async function upToDate(store: ImageStore, recipe: RecipeFile, fp: string): Promise<Image | undefined> {
  const img = await store.resolve(recipe.tags[0]).catch(() => undefined);
  if (!img || img.config.config?.Labels?.[RECIPE_LABEL] !== fp) return undefined;
  const db = await store.names.read();
  // Another tag (node:latest) may have been moved elsewhere; put them all back on this image.
  for (const t of recipe.tags.slice(1)) if (db.refs[t] !== img.manifestDigest) await store.tag(img.manifestDigest, t);
  return img;
}

/**
 * A digest of everything a runtime image is made from: the recipe's files (Dockerfile,
 * context.json, shims…), the identity (size, mtime, inode) of each host path context.json names,
 * and the fingerprints of the images it builds FROM. A Debian upgrade of node or python, or an
 * edited shim, changes it and triggers a rebuild.
 */
export async function recipeFingerprint(name: RuntimeName): Promise<string> {
  const dir = recipeDir(name);
  const recipe = await readRecipe(dir);
  const h = crypto.createHash('sha256');
  await hashTree(h, dir, '');
  const hostPaths = recipe.context.flatMap((s) => ('from' in s && s.op !== 'recipe' ? [s.from] : 'of' in s ? s.of : 'busybox' in s ? [s.busybox] : []));
  for (const p of hostPaths) {
    const st = await fs.stat(p.replace(/\/[^/]*\*[^/]*$/, '')).catch(() => null);
    h.update(`${p}\0${st ? `${st.size}:${st.mtimeMs}:${st.ino}` : 'missing'}\n`);
  }
  for (const req of recipe.requires ?? []) h.update(`requires ${req} ${await recipeFingerprint(req as RuntimeName)}\n`);
  return `sha256:${h.digest('hex')}`;
}

async function hashTree(h: crypto.Hash, dir: string, rel: string): Promise<void> {
  for (const n of (await fs.readdir(path.join(dir, rel))).sort()) {
    if (n.startsWith('.')) continue;
    const r = rel ? `${rel}/${n}` : n;
    const st = await fs.lstat(path.join(dir, r));
    if (st.isDirectory()) await hashTree(h, dir, r);
    else if (st.isSymbolicLink()) h.update(`${r} -> ${await fs.readlink(path.join(dir, r))}\n`);
    else if (st.isFile()) h.update(`${r} ${(st.mode & 0o777).toString(8)}\0`).update(await fs.readFile(path.join(dir, r))).update('\n');
  }
}

/** Links (or copies, across file systems) an image's blobs from `from` into `to` and records it there. */
async function importImage(from: ImageStore, img: Image, to: ImageStore, tags: string[], onProgress?: ProgressFn): Promise<Image> {
  const blobs = [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)];
  for (const d of blobs) {
    if (await to.content.has(d)) continue;
    const tmp = path.join(to.paths.ingest, `import-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    await fs.mkdir(to.paths.ingest, { recursive: true });
    try {
      await fs.link(from.content.path(d), tmp).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EXDEV' && e.code !== 'EPERM') throw e;
        await fs.copyFile(from.content.path(d), tmp);
      });
      await fs.rename(tmp, to.content.path(d));
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }
  await linkLayers(from, img, to);
  return to.registerManifest(img.manifestDigest, tags, onProgress);
}

/**
 * Hard-link copies (`cp -al`) of the cache store's unpacked layers, adopted as `to`'s layers:
 * much faster than unpacking the tars again. Layers are read-only overlay lowers, so sharing
 * inodes is safe. Anything that fails here is left to registerManifest, which unpacks.
 */
async function linkLayers(from: ImageStore, img: Image, to: ImageStore): Promise<void> {
  let parent: string | null = null;
  for (const l of img.layers) {
    const chainId = l.chainId;
    const parentChainId = parent;
    parent = chainId;
    if ((await to.layers.has(chainId)) || !(await from.layers.has(chainId))) continue;
    const tmp = path.join(to.paths.ingest, `layer-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    try {
      await run('cp', ['-al', from.layers.dir(chainId), tmp]);
      await to.layers.adopt({ chainId, diffId: l.diffId, parentChainId, fromDir: tmp, blobDigest: l.digest });
    } catch {
      // Different file systems or no cp: registerManifest unpacks the blob instead.
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }
}
