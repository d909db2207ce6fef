import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import type { ContentStore } from '../content/store.js';
import type { ImageConfig, ImageManifest } from '../images/types.js';

/** The image state after a build step: a manifest and config whose blobs are in the content store. */
export interface BuildState {
  /** Manifest digest, or null for `FROM scratch` before any step. */
  digest: string | null;
  manifest: ImageManifest;
  config: ImageConfig;
}

/**
 * The build cache, Docker's classic model: a step is identified by its parent state's manifest
 * digest, the instruction (after variable expansion) and a digest of its inputs (the files a
 * COPY reads). `build-cache/<sha256 of that>` holds the manifest digest of the step's result.
 * An entry whose blobs were garbage-collected is a miss, never an error.
 */
export class BuildCache {
  readonly dir: string;

  constructor(
    root: string,
    readonly content: ContentStore,
  ) {
    this.dir = path.join(root, 'build-cache');
  }

  /** The cache key of a step. */
  key(parent: string | null, instruction: string, inputs = ''): string {
    return crypto.createHash('sha256').update(`${parent ?? 'scratch'}\n${instruction}\n${inputs}`).digest('hex');
  }

  /** The cached result of `key`, when its manifest, config and layer blobs are all still present. */
  async get(key: string): Promise<BuildState | undefined> {
    const digest = (await fs.readFile(path.join(this.dir, key), 'utf8').catch(() => '')).trim();
    if (!digest || !(await this.content.has(digest))) return undefined;
    try {
      const manifest = await this.content.readJSON<ImageManifest>(digest);
      if (!(await this.content.has(manifest.config.digest))) return undefined;
      for (const l of manifest.layers) if (!(await this.content.has(l.digest))) return undefined;
      const config = await this.content.readJSON<ImageConfig>(manifest.config.digest);
      return { digest, manifest, config };
    } catch {
      return undefined;
    }
  }

  /** Records `key` → manifest digest (temp-then-rename; concurrent writers agree or last wins). */
  async put(key: string, manifestDigest: string): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.${key}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
    await fs.writeFile(tmp, `${manifestDigest}\n`);
    await fs.rename(tmp, path.join(this.dir, key));
  }
}

/**
 * Stores a state's config and manifest blobs and returns its manifest digest. The manifest's key
 * order matches ImageStore.putImage's, so the final image keeps the digest computed here.
 */
export async function saveState(content: ContentStore, manifest: ImageManifest, config: ImageConfig): Promise<BuildState> {
  const c = await content.putBuffer(Buffer.from(JSON.stringify(config)));
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: manifest.mediaType,
    config: { mediaType: manifest.config.mediaType, digest: c.digest, size: c.size },
    layers: manifest.layers,
  };
  const { digest } = await content.putBuffer(Buffer.from(JSON.stringify(m)));
  return { digest, manifest: m, config };
}
