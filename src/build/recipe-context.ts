import fs from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { invalid, precondition } from '../errors.js';

const run = promisify(execFile);

/**
 * A runtime-image recipe's `context.json`: how to fill a build context from this machine's own
 * files before the recipe's Dockerfile (FROM scratch / COPY …) turns it into layers. Each step
 * writes under a context-relative `to`; host paths are read, never written.
 *
 *   copy    {from: host path, to}                 one host file, symlinks followed
 *   libs    {of: [host binaries, globs], to}      the shared libraries `ldd` lists, at their own paths under `to`
 *   tree    {from: host dir, to, exclude: [names]} a directory tree; names (or globs) in `exclude` are skipped anywhere
 *   applets {busybox: host path, to}              one symlink `to/<applet> -> busybox` per `busybox --list` entry
 *   recipe  {from: path or glob in the recipe dir, to}  files shipped with the recipe (e.g. /etc/passwd, shims)
 *   mkdir   {to, mode: "1777"}                    an empty directory
 *
 * `optional: true` on a step makes a missing source a no-op instead of an error.
 */
export interface RecipeFile {
  /** Image names this recipe produces; the first is the primary name. */
  tags: string[];
  description?: string;
  /** Other runtime images this one builds FROM (built first). */
  requires?: string[];
  context: ContextStep[];
}

export type ContextStep =
  | { op: 'copy'; from: string; to: string; optional?: boolean }
  | { op: 'libs'; of: string[]; to: string; optional?: boolean }
  | { op: 'tree'; from: string; to: string; exclude?: string[]; optional?: boolean }
  | { op: 'applets'; busybox: string; to: string; optional?: boolean }
  | { op: 'recipe'; from: string; to: string; optional?: boolean }
  | { op: 'mkdir'; to: string; mode?: string; optional?: boolean };

/** Reads and checks `<recipeDir>/context.json`. */
export async function readRecipe(recipeDir: string): Promise<RecipeFile> {
  const file = path.join(recipeDir, 'context.json');
  const text = await fs.readFile(file, 'utf8').catch((e) => {
    throw precondition(`cannot read ${file}: ${(e as Error).message}; is the runtime-images folder complete?`, e);
  });
  const r = JSON.parse(text) as RecipeFile;
  if (!Array.isArray(r.tags) || r.tags.length === 0 || !Array.isArray(r.context)) {
    throw invalid(`${file}: needs "tags" (non-empty) and "context" (a list of steps)`);
  }
  return r;
}

/** Runs every context step of `recipe` into the empty directory `ctxDir`. */
export async function prepareContext(recipe: RecipeFile, recipeDir: string, ctxDir: string): Promise<void> {
  for (const step of recipe.context) {
    const to = inside(ctxDir, step.to);
    try {
      await runStep(step, recipeDir, to);
    } catch (e) {
      if (step.optional && (e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw precondition(`runtime image context step ${JSON.stringify(step)} failed: ${(e as Error).message}`, e);
    }
  }
}

async function runStep(step: ContextStep, recipeDir: string, to: string): Promise<void> {
  switch (step.op) {
    case 'copy':
      return copyFile(step.from, to);
    case 'libs':
      return copyLibs(await expandGlobs(step.of), to);
    case 'tree':
      return copyTree(step.from, to, step.exclude ?? []);
    case 'applets':
      return applets(step.busybox, to);
    case 'recipe':
      return copyRecipeFiles(recipeDir, step.from, to, step.optional ?? false);
    case 'mkdir':
      await mkdirs(to);
      await fs.chmod(to, Number.parseInt(step.mode ?? '755', 8));
      return;
    default:
      throw invalid(`unknown context step op "${(step as { op: string }).op}"`);
  }
}

/** A context-relative path, refused when it would escape the context. */
function inside(ctxDir: string, rel: string): string {
  const p = path.resolve(ctxDir, rel);
  if (p !== ctxDir && !p.startsWith(ctxDir + path.sep)) throw invalid(`context path "${rel}" escapes the build context`);
  return p;
}

/** Copies a host file's content and mode (following symlinks), creating parents 0755. */
async function copyFile(from: string, to: string): Promise<void> {
  const st = await fs.stat(from);
  await mkdirs(path.dirname(to));
  await fs.copyFile(from, to);
  await fs.chmod(to, st.mode & 0o7777);
}

/** mkdir -p with every created directory chmod 0755, whatever the umask (reproducible modes). */
async function mkdirs(dir: string): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  if (!first) return;
  for (let d = dir; d.length >= first.length; d = path.dirname(d)) await fs.chmod(d, 0o755);
}

/** `ldd` of each binary: every resolved library, plus the dynamic loader, at its own path. */
async function copyLibs(binaries: string[], to: string): Promise<void> {
  const libs = new Set<string>();
  for (const bin of binaries) {
    await fs.access(bin);
    const { stdout } = await run('ldd', [bin]).catch((e) => {
      throw precondition(`ldd ${bin} failed (is it a dynamic binary? is libc-bin installed?): ${(e as Error).message}`, e);
    });
    for (const line of stdout.split('\n')) {
      const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
      if (m) libs.add(m[1]);
    }
  }
  for (const lib of [...libs].sort()) await copyFile(lib, path.join(to, lib));
}

/** Expands `*` in the last path component of host paths (sorted, for reproducible contexts). */
async function expandGlobs(patterns: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of patterns) {
    if (!p.includes('*')) {
      out.push(p);
      continue;
    }
    const dir = path.dirname(p);
    const re = globRe(path.basename(p));
    const names = (await fs.readdir(dir)).filter((n) => re.test(n)).sort();
    out.push(...names.map((n) => path.join(dir, n)));
  }
  return out;
}

function globRe(glob: string): RegExp {
  const src = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${src}$`);
}

/** Copies a directory tree (files, dirs, symlinks as symlinks) skipping excluded names. */
async function copyTree(from: string, to: string, exclude: string[]): Promise<void> {
  const skip = exclude.map(globRe);
  const walk = async (src: string, dst: string): Promise<void> => {
    const st = await fs.lstat(src);
    if (st.isDirectory()) {
      await mkdirs(dst);
      await fs.chmod(dst, st.mode & 0o7777);
      for (const name of (await fs.readdir(src)).sort()) {
        if (skip.some((re) => re.test(name))) continue;
        await walk(path.join(src, name), path.join(dst, name));
      }
    } else if (st.isSymbolicLink()) {
      await fs.symlink(await fs.readlink(src), dst);
    } else if (st.isFile()) {
      await fs.copyFile(src, dst);
      await fs.chmod(dst, st.mode & 0o7777);
    }
    // sockets, fifos and devices have no place in a runtime image: skipped.
  };
  await walk(from, to);
}

/** One `<applet> -> busybox` symlink per applet the binary reports (not the binary itself). */
async function applets(busybox: string, to: string): Promise<void> {
  const { stdout } = await run(busybox, ['--list']);
  await mkdirs(to);
  for (const name of stdout.split('\n').map((s) => s.trim()).filter(Boolean).sort()) {
    if (name === 'busybox' || name.includes('/')) continue;
    const link = path.join(to, name);
    await fs.symlink('busybox', link).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}

/** Recipe-dir files (a path, or a glob in its last component) into `to` (a dir when it ends in /). */
async function copyRecipeFiles(recipeDir: string, from: string, to: string, optional: boolean): Promise<void> {
  const src = inside(recipeDir, from);
  const matches = from.includes('*') ? await expandGlobs([src]) : [src];
  if (matches.length === 0 && optional) return;
  for (const m of matches) {
    const st = await fs.stat(m);
    if (st.isDirectory()) await copyTree(m, to, []);
    else await copyFile(m, from.includes('*') || from.endsWith('/') ? path.join(to, path.basename(m)) : to);
  }
}
