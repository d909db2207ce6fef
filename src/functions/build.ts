import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { dirToLayerEntries, writeLayerBlob } from '../archive/tar-writer.js';
import { unpackLayer } from '../archive/unpack.js';
import { JiffyError } from '../errors.js';
import type { Image, ImageStore } from '../images/store.js';
import { repoRoot } from '../paths.js';
import type { FunctionSettings, Runtime } from './spec.js';

/** Resolves (building if missing) the runtime image a function runs on. */
export type RuntimeImageFn = (store: ImageStore, runtime: 'busybox' | 'node' | 'python') => Promise<Image>;

export interface BuiltFunction {
  image: { id: string; ref: string };
  codeDiffId: string;
}

const RUNTIME_IMAGE: Record<Runtime, 'busybox' | 'node' | 'python'> = { node: 'node', python: 'python', exec: 'busybox' };
const SHIM: Partial<Record<Runtime, string>> = { node: 'node/shim.mjs', python: 'python/shim.py' };

/** Image ref a function version is tagged with in the store. */
export function functionImageRef(name: string, version: number): string {
  return `jiffy-fn-${name}:v${version}`;
}

/**
 * Builds a function version's image: the runtime image plus ONE deterministic code layer holding
 * the code at /var/task and Jiffy's runtime shim at /opt/jiffy. The shim rides in the code layer
 * (not only in the runtime image) so the worker and the shim always speak the same protocol
 * version, whatever runtime image happens to be in the store.
 */
export async function buildFunctionImage(
  store: ImageStore,
  runtimeImage: RuntimeImageFn,
  fn: { name: string; version: number; settings: FunctionSettings },
  code: Readable,
  maxCodeBytes: number,
): Promise<BuiltFunction> {
  const tmp = path.join(store.paths.root, 'tmp');
  await fs.mkdir(tmp, { recursive: true });
  const stage = await fs.mkdtemp(path.join(tmp, `fn-${fn.name}-`));
  try {
    // The layer root becomes "/" in the merged rootfs (top layer wins): it must be traversable by uid 65534.
    await fs.chmod(stage, 0o755);
    await fs.mkdir(path.join(stage, 'var', 'task'), { recursive: true, mode: 0o755 });
    await unpackCode(code, path.join(stage, 'var', 'task'), maxCodeBytes);
    await checkHandler(path.join(stage, 'var', 'task'), fn.settings);
    await addShim(stage, fn.settings.runtime);
    const base = await runtimeImage(store, RUNTIME_IMAGE[fn.settings.runtime]);
    const blob = await writeLayerBlob(store.content, dirToLayerEntries(stage), { gzip: false });
    const ref = functionImageRef(fn.name, fn.version);
    const created_by = `jiffy deploy ${fn.name} --runtime ${fn.settings.runtime} --handler ${fn.settings.handler}`;
    const image = await store.appendLayer(
      base,
      { blobDigest: blob.digest, diffId: blob.diffId, size: blob.size, mediaType: blob.mediaType, unpackedDir: stage },
      { created_by, comment: `function ${fn.name} version ${fn.version}` },
      { ref, configPatch: { WorkingDir: '/var/task' } },
    );
    return { image: { id: image.id, ref }, codeDiffId: blob.diffId };
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

async function unpackCode(code: Readable, dest: string, maxBytes: number): Promise<void> {
  try {
    await unpackLayer(code, dest, { maxBytes });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'resource_exhausted') throw e; // the store is full: the upload is fine
    if (code === 'payload_too_large' || /limit|too large|exceeds/i.test((e as Error).message)) {
      throw new JiffyError('payload_too_large', `function code is larger than ${maxBytes} bytes unpacked; trim it or raise the gateway's code limit`, { cause: e });
    }
    throw new JiffyError('invalid_argument', `function code is not a usable tar: ${(e as Error).message}`, { cause: e });
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(() => true, () => false);
}

/** Fails the deploy early (400) when the handler cannot possibly load. */
async function checkHandler(task: string, s: FunctionSettings): Promise<void> {
  if (s.runtime === 'exec') {
    const cmd = s.handler.trim().split(/\s+/)[0]!;
    if (cmd.startsWith('./') && !(await exists(path.join(task, cmd)))) {
      throw new JiffyError('invalid_argument', `invalid function setting "handler": ${cmd} is not in the uploaded code; add it or pass --handler`, { details: { field: 'handler' } });
    }
    return;
  }
  const file = s.handler.slice(0, s.handler.lastIndexOf('.'));
  const exts = s.runtime === 'node' ? ['', '.mjs', '.js', '.cjs'] : ['.py'];
  for (const ext of exts) if (await exists(path.join(task, file + ext))) return;
  throw new JiffyError('invalid_argument', `invalid function setting "handler": ${file}${s.runtime === 'node' ? '.js/.mjs/.cjs' : '.py'} is not in the uploaded code (handler ${s.handler}); pass --handler FILE.EXPORT`, { details: { field: 'handler' } });
}

async function addShim(stage: string, runtime: Runtime): Promise<void> {
  const rel = SHIM[runtime];
  if (!rel) return;
  const dir = path.join(stage, 'opt', 'jiffy');
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fs.chmod(path.join(stage, 'opt'), 0o755);
  await fs.copyFile(path.join(repoRoot(), 'runtime-images', rel), path.join(dir, path.basename(rel)));
  await fs.chmod(path.join(dir, path.basename(rel)), 0o644);
}
