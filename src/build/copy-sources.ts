import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { invalid, notFound } from '../errors.js';

/** One file-system object a COPY/ADD puts into its layer; `source` is the host file for regular files. */
export interface LayerFile {
  /** Path inside the image, without a leading slash (`app/index.js`). */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  source?: string;
  linkname?: string;
  size?: number;
}

/** Owner and mode overrides from `--chown` / `--chmod`. */
export interface CopyFlags {
  uid: number;
  gid: number;
  chmod?: number;
}

/**
 * Docker's COPY rules, resolved against the build context: each source is a path or glob relative
 * to the context (never outside it); a directory source copies its *contents*; the destination is
 * a directory when it ends in `/` or there are several sources, else the target file name.
 * Top-level symlinks are followed, symlinks inside directories are kept as links.
 */
export async function resolveCopy(
  contextDir: string,
  sources: string[],
  dest: string,
  flags: CopyFlags,
  ignore: (rel: string) => boolean = () => false,
): Promise<LayerFile[]> {
  const files = new Map<string, LayerFile>();
  const matched: string[] = [];
  for (const s of sources) matched.push(...(await expandSource(contextDir, s, ignore)));
  const destIsDir = dest.endsWith('/') || matched.length > 1 || sources.some((s) => /[*?[]/.test(s));
  const destRel = dest.replace(/^\/+/, '').replace(/\/+$/, '');
  for (const abs of matched) {
    const st = await fs.stat(abs);
    const rel = path.relative(contextDir, abs);
    if (st.isDirectory()) {
      await walkDir(abs, destRel, flags, files, (p) => ignore(path.join(rel, p)));
    } else if (st.isFile()) {
      const target = destIsDir ? path.posix.join(destRel, path.basename(abs)) : destRel;
      if (!target) throw invalid(`COPY/ADD: cannot copy file ${rel} onto / ; give a file name or a directory ending in /`);
      files.set(target, fileEntry(target, abs, st.mode, st.size, flags));
    } else {
      throw invalid(`COPY/ADD: ${rel} is not a regular file or directory`);
    }
  }
  return [...files.values()];
}

/** Context-relative source → absolute matches; refuses paths that leave the context. */
async function expandSource(contextDir: string, src: string, ignore: (rel: string) => boolean): Promise<string[]> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) {
    throw invalid(`COPY/ADD: remote source ${src} is not supported by jiffy build (no network); download it into the build context and COPY it`);
  }
  const norm = path.posix.normalize(src.replace(/^\/+/, ''));
  if (norm === '..' || norm.startsWith('../')) throw invalid(`COPY/ADD: source ${src} is outside the build context`);
  if (!/[*?[]/.test(norm)) {
    const abs = path.join(contextDir, norm);
    try {
      await fs.stat(abs);
    } catch (e) {
      throw notFound(`COPY/ADD: ${src} not found in the build context ${contextDir}`, e);
    }
    if (norm !== '.' && ignore(norm)) throw notFound(`COPY/ADD: ${src} is excluded by .dockerignore`);
    return [abs];
  }
  const re = globToRegExp(norm);
  const out: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await fs.readdir(dir)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (ignore(r)) continue;
      if (re.test(r)) out.push(path.join(dir, name));
      else if ((await fs.lstat(path.join(dir, name))).isDirectory() && norm.split('/').length > r.split('/').length) {
        await walk(path.join(dir, name), r);
      }
    }
  };
  await walk(contextDir, '');
  if (out.length === 0) throw notFound(`COPY/ADD: no files in the build context match ${src}`);
  return out;
}

/** `*` and `?` match within one path segment, `**` across segments (Go filepath.Match plus `**`). */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/^!/, '^')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

async function walkDir(dir: string, destRel: string, flags: CopyFlags, files: Map<string, LayerFile>, ignore: (rel: string) => boolean, rel = ''): Promise<void> {
  for (const name of (await fs.readdir(dir)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    if (ignore(r)) continue;
    const abs = path.join(dir, name);
    const target = destRel ? `${destRel}/${r}` : r;
    const st = await fs.lstat(abs);
    if (st.isDirectory()) {
      files.set(target, { path: target, type: 'dir', mode: mode(st.mode, flags), uid: flags.uid, gid: flags.gid });
      await walkDir(abs, destRel, flags, files, ignore, r);
    } else if (st.isSymbolicLink()) {
      files.set(target, { path: target, type: 'symlink', mode: 0o777, uid: flags.uid, gid: flags.gid, linkname: await fs.readlink(abs) });
    } else if (st.isFile()) {
      files.set(target, fileEntry(target, abs, st.mode, st.size, flags));
    }
    // sockets, fifos, devices in a build context are skipped, as Docker does.
  }
}

function fileEntry(target: string, source: string, m: number, size: number, flags: CopyFlags): LayerFile {
  return { path: target, type: 'file', mode: mode(m, flags), uid: flags.uid, gid: flags.gid, source, size };
}

function mode(m: number, flags: CopyFlags): number {
  return flags.chmod ?? m & 0o7777;
}

/**
 * A digest of what a COPY would put in its layer — paths, types, modes, owners, link targets and
 * file contents — so an unchanged context hits the build cache without writing a tar.
 */
export async function hashLayerFiles(files: LayerFile[]): Promise<string> {
  const h = crypto.createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    h.update(`${f.path}\0${f.type}\0${f.mode.toString(8)}\0${f.uid}:${f.gid}\0${f.linkname ?? ''}\0`);
    if (f.type === 'file' && f.source) {
      for await (const chunk of createReadStream(f.source)) h.update(chunk as Buffer);
    }
    h.update('\n');
  }
  return `sha256:${h.digest('hex')}`;
}
