import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Store layout under one root (default /var/lib/jiffy, JIFFY_ROOT overrides):
 *   blobs/sha256/<hex>       content-addressed blobs (layer tars, configs, manifests)
 *   ingest/                  temp area: written, verified, then renamed into blobs/
 *   layers/<chainid>/diff/   one unpacked layer, shared read-only
 *   l/<short>                short symlinks to layer diff dirs (keep overlay lowerdir strings short)
 *   images.json              name:tag -> manifest digest
 *   containers/<id>/         config.json, state.json, logs, upper/, work/, merged/
 *   run/                     sockets, pid files, launcher state
 */
export interface StorePaths {
  root: string;
  blobs: string;
  ingest: string;
  layers: string;
  shortLinks: string;
  images: string;
  containers: string;
  run: string;
}

export function defaultRoot(): string {
  return process.env.JIFFY_ROOT || '/var/lib/jiffy';
}

export function storePaths(root: string = defaultRoot()): StorePaths {
  return {
    root,
    blobs: path.join(root, 'blobs', 'sha256'),
    ingest: path.join(root, 'ingest'),
    layers: path.join(root, 'layers'),
    shortLinks: path.join(root, 'l'),
    images: path.join(root, 'images.json'),
    containers: path.join(root, 'containers'),
    run: path.join(root, 'run'),
  };
}

/** Repository root (where package.json lives), from compiled dist/src/paths.js or src/paths.ts. */
export function repoRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/src -> repo, or src -> repo
  return here.includes(`${path.sep}dist${path.sep}`) || here.endsWith(`${path.sep}dist${path.sep}src`)
    ? path.resolve(here, '..', '..')
    : path.resolve(here, '..');
}

/** The native launcher binary (JIFFY_LAUNCHER overrides). */
export function launcherBinary(): string {
  return process.env.JIFFY_LAUNCHER || path.join(repoRoot(), 'native', 'build', 'jiffy-launch');
}
