import type { Command } from 'commander';
import { JiffyError, hasCode, invalid } from '../../errors.js';
import { defaultRoot } from '../../paths.js';
import { ImageStore, type Image } from '../../images/store.js';
import { parseReference, formatName } from '../../images/reference.js';
import { loadArchiveFile } from '../../images/load.js';
import { saveArchive, type ArchiveFormat } from '../../images/save.js';
import { createProgressRenderer } from '../progress.js';

/** `inspect X`: the image X, else (like docker) the container with that id or name. */
async function inspectImageOrContainer(store: ImageStore, ref: string): Promise<unknown> {
  try {
    return await inspectJSON(store, await store.resolve(ref));
  } catch (e) {
    // A container name need not be a valid image reference (e.g. upper case): try it either way.
    if (!hasCode(e, 'not_found') && !hasCode(e, 'invalid_argument')) throw e;
    const { ContainerManager } = await import('../../containers/manager.js');
    const containers = new ContainerManager({ store, warm: false });
    return containers.get(ref).catch((e2: unknown) => {
      if (!hasCode(e2, 'not_found')) throw e2;
      throw new JiffyError('not_found', `no such image or container: ${ref}; list them with jiffy images and jiffy ps -a`, { cause: e });
    });
  }
}

/** Image verbs, docker-style: images, history, inspect, tag, rmi, prune, load, save. */
export function register(program: Command): void {
  program
    .command('images')
    .description('list local images')
    .option('--format <fmt>', '"table" (default) or "json"')
    .option('-q, --quiet', 'print only image ids')
    .action(async (o: { format?: string; quiet?: boolean }) => listImages(await open(), o));

  program
    .command('history')
    .description('show the history of an image, newest first')
    .argument('<image>')
    .option('--no-trunc', 'do not truncate output')
    .option('--format <fmt>', '"table" (default) or "json"')
    .action(async (ref: string, o: { trunc: boolean; format?: string }) => showHistory(await open(), ref, o));

  program
    .command('inspect')
    .description('show low-level information on images (or, when no image matches, containers) as JSON')
    .argument('<image-or-container...>')
    .action(async (refs: string[]) => {
      const store = await open();
      const out = [];
      for (const r of refs) out.push(await inspectImageOrContainer(store, r));
      console.log(JSON.stringify(out, null, 2));
    });

  program
    .command('tag')
    .description('create a name TARGET that refers to SOURCE')
    .argument('<source>')
    .argument('<target>')
    .action(async (src: string, dst: string) => (await open()).tag(src, dst));

  program
    .command('rmi')
    .description('remove images (untag; delete when the last name goes)')
    .argument('<image...>')
    .option('-f, --force', 'remove an image with several names, or in use by a container')
    .action(async (refs: string[], o: { force?: boolean }) => {
      const store = await open();
      for (const r of refs) {
        const res = await store.remove(r, { force: o.force });
        for (const u of res.untagged) console.log(`Untagged: ${u}`);
        for (const d of res.deleted) console.log(`Deleted: ${d}`);
      }
    });

  program
    .command('prune')
    .description('delete blobs and unpacked layers that no image or container uses')
    .action(async () => {
      const r = await (await open()).prune();
      console.log(`Deleted ${r.blobs} blobs and ${r.layers} layers; reclaimed ${humanSize(r.bytes)} of blobs`);
    });

  program
    .command('load')
    .description('load images from a docker-archive or OCI layout tar (gzip accepted)')
    .requiredOption('-i, --input <file>', 'archive to read')
    .option('-q, --quiet', 'no progress output')
    .action(async (o: { input: string; quiet?: boolean }) => {
      const store = await open();
      const progress = o.quiet ? undefined : createProgressRenderer(process.stderr);
      try {
        const images = await loadArchiveFile(store, o.input, { onProgress: progress });
        progress?.close();
        for (const img of images) {
          if (img.refs.length) for (const r of img.refs) console.log(`Loaded image: ${r}`);
          else console.log(`Loaded image ID: ${img.id}`);
        }
      } finally {
        progress?.close();
      }
    });

  program
    .command('save')
    .description('save images to a tar archive (docker-archive or OCI layout)')
    .requiredOption('-o, --output <file>', 'archive to write')
    .option('--format <fmt>', '"docker" (default, docker save) or "oci" (OCI image layout)', 'docker')
    .argument('<image...>')
    .action(async (refs: string[], o: { output: string; format: string }) => {
      if (o.format !== 'docker' && o.format !== 'oci') throw invalid(`unknown --format "${o.format}"; use docker or oci`);
      const store = await open();
      const progress = createProgressRenderer(process.stderr);
      try {
        await saveArchive(store, refs, o.output, { format: o.format as ArchiveFormat, onProgress: progress });
      } finally {
        progress.close();
      }
    });
}

function open(): Promise<ImageStore> {
  return ImageStore.open(defaultRoot());
}

/** Uncompressed size of an image: the sum of its layer tars (blob size when not recorded). */
async function imageSize(store: ImageStore, img: Image): Promise<number> {
  let n = 0;
  for (const l of img.layers) n += (await store.layers.meta(l.chainId).catch(() => null))?.tarSize ?? l.size;
  return n;
}

async function listImages(store: ImageStore, o: { format?: string; quiet?: boolean }): Promise<void> {
  const rows: Array<{ repository: string; tag: string; id: string; created?: string; size: number; digest: string }> = [];
  for (const img of await store.list()) {
    const size = await imageSize(store, img);
    const tags = img.refs.filter((r) => !r.includes('@'));
    const base = { id: img.id, created: img.config.created, size, digest: img.manifestDigest };
    if (!tags.length) rows.push({ repository: '<none>', tag: '<none>', ...base });
    for (const t of tags) {
      const r = parseReference(t);
      rows.push({ repository: formatName(r), tag: r.tag ?? '<none>', ...base });
    }
  }
  if (o.quiet) return void console.log([...new Set(rows.map((r) => r.id.slice(7, 19)))].join('\n'));
  if (o.format === 'json') return void console.log(JSON.stringify(rows, null, 2));
  printTable(
    ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
    rows.map((r) => [r.repository, r.tag, r.id.slice(7, 19), ago(r.created), humanSize(r.size)]),
  );
}

async function showHistory(store: ImageStore, ref: string, o: { trunc: boolean; format?: string }): Promise<void> {
  const img = await store.resolve(ref);
  const history = img.config.history?.length
    ? img.config.history
    : img.layers.map(() => ({ created_by: '', empty_layer: false }) as NonNullable<Image['config']['history']>[number]);
  let layer = 0;
  const rows = [];
  for (const h of history) {
    let size = 0;
    if (!h.empty_layer && layer < img.layers.length) {
      const l = img.layers[layer++];
      size = (await store.layers.meta(l.chainId).catch(() => null))?.tarSize ?? l.size;
    }
    rows.push({ created: h.created, createdBy: h.created_by ?? '', author: h.author, comment: h.comment ?? '', size, emptyLayer: !!h.empty_layer });
  }
  rows.reverse();
  if (o.format === 'json') return void console.log(JSON.stringify({ id: img.id, history: rows }, null, 2));
  const cut = (s: string, n: number) => (o.trunc && s.length > n ? `${s.slice(0, n - 3)}...` : s);
  printTable(
    ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
    rows.map((r, i) => [i === 0 ? (o.trunc ? img.id.slice(7, 19) : img.id) : '<missing>', ago(r.created), cut(r.createdBy.replace(/\s+/g, ' '), 45), humanSize(r.size), cut(r.comment, 40)]),
  );
}

async function inspectJSON(store: ImageStore, img: Image): Promise<Record<string, unknown>> {
  return {
    Id: img.id,
    RepoTags: img.refs.filter((r) => !r.includes('@')),
    RepoDigests: img.refs.filter((r) => r.includes('@')),
    ManifestDigest: img.manifestDigest,
    Created: img.config.created,
    Author: img.config.author ?? '',
    Architecture: img.config.architecture,
    Os: img.config.os,
    Config: img.config.config ?? {},
    RootFS: { Type: 'layers', Layers: img.config.rootfs.diff_ids },
    Size: await imageSize(store, img),
    History: img.config.history ?? [],
    Manifest: img.manifest,
    Layers: img.layers.map((l) => ({ Digest: l.digest, MediaType: l.mediaType, Size: l.size, DiffID: l.diffId, ChainID: l.chainId, Dir: l.dir })),
  };
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('   ').trimEnd();
  console.log([line(head), ...rows.map(line)].join('\n'));
}

/** Docker's human sizes: SI units, 3 significant digits. */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : Number(v.toPrecision(3))}${units[i]}`;
}

/** "3 minutes ago", docker-style; epoch-0 timestamps (reproducible builds) print as such. */
export function ago(iso?: string): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return 'N/A';
  const s = Math.max(0, (Date.now() - t) / 1000);
  const steps: Array<[number, string]> = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [4.35, 'week'], [12, 'month'], [Infinity, 'year']];
  let v = s;
  for (const [k, name] of steps) {
    if (v < k) {
      const n = Math.max(1, Math.floor(v));
      return name === 'second' && s < 1 ? 'Less than a second ago' : `${n} ${name}${n === 1 ? '' : 's'} ago`;
    }
    v /= k;
  }
  return 'N/A';
}
