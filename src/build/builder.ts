import fs from 'node:fs/promises';
import path from 'node:path';
import { JiffyError, invalid, precondition } from '../errors.js';
import type { ProgressFn } from '../progress.js';
import type { Image, ImageStore } from '../images/store.js';
import { MediaTypes, hostPlatform, type ContainerConfig, type ImageConfig, type ImageManifest } from '../images/types.js';
import { BuildCache, saveState, type BuildState } from './build-cache.js';
import { expandVars, parseDockerfile, type Instruction } from './dockerfile.js';
import { loadDockerignore } from './dockerignore.js';
import { copyStep, workdirStep } from './copy-step.js';

/**
 * Runs a RUN step: boot a container from `image` (already in the store), run `command` in it and
 * return the container's upper dir (overlay form) to commit as the step's layer. Provided by the
 * containers layer; without it RUN fails with failed_precondition.
 */
export type RunStepFn = (opts: {
  image: Image;
  command: string[];
  env: string[];
  workdir: string;
  user?: string;
  log: (line: string) => void;
}) => Promise<{ upperDir: string; cleanup: () => Promise<void> }>;

/** Commits a RUN step's upper dir as a layer on top of `state` (see run-step.ts). */
export type CommitRunFn = (state: BuildState, upperDir: string, createdBy: string, created: string) => Promise<BuildState>;

export interface BuildOptions {
  /** The build context directory (COPY/ADD sources are relative to it). */
  contextDir: string;
  /** Dockerfile text. */
  dockerfile: string;
  /** Names to tag the result with (`name:tag`). */
  tags?: string[];
  buildArgs?: Record<string, string>;
  noCache?: boolean;
  /** RFC 3339 time for `created` in config and history (default: now). */
  created?: string;
  /** Extra labels (e.g. the recipe digest of a runtime image). */
  labels?: Record<string, string>;
  /** Finds the FROM image (default: store.resolve). */
  resolveBase?: (ref: string) => Promise<Image>;
  runStep?: RunStepFn;
  commitRun?: CommitRunFn;
  /** Step lines (`Step 2/7 : COPY …`, ` ---> Using cache`). */
  log?: (line: string) => void;
  onProgress?: ProgressFn;
}

export interface BuildResult {
  image: Image;
  steps: Array<{ text: string; cached: boolean }>;
}

/** What one step sees: the state so far and the build-time variables. */
export interface StepContext {
  store: ImageStore;
  cache: BuildCache;
  opts: BuildOptions;
  created: string;
  /** ARG values plus the image's ENV, for `$VAR` expansion. */
  vars: Record<string, string>;
  /** ARG values only (a RUN sees them as environment variables). */
  args: Record<string, string>;
  ignore: (rel: string) => boolean;
  /** Whether CMD was set in this Dockerfile (ENTRYPOINT resets an inherited CMD only). */
  cmdSet: boolean;
}

/**
 * Builds an image from a Dockerfile (the subset in dockerfile.ts), Docker's way: each
 * instruction makes a new image state from the previous one; COPY/ADD/RUN add one layer each,
 * the others add an `empty_layer` history entry with a config change. Each step's result is
 * cached by (parent, instruction, input digest), so an unchanged rebuild reproduces the same
 * image id. The final state is recorded in the store under `tags`.
 */
export async function buildImage(store: ImageStore, opts: BuildOptions): Promise<BuildResult> {
  const instructions = parseDockerfile(opts.dockerfile);
  const contextDir = path.resolve(opts.contextDir);
  const st = await fs.stat(contextDir).catch(() => null);
  if (!st?.isDirectory()) throw invalid(`build context ${opts.contextDir} is not a directory`);
  const ctx: StepContext = {
    store,
    cache: new BuildCache(store.paths.root, store.content),
    opts: { ...opts, contextDir },
    created: opts.created ?? new Date().toISOString(),
    vars: {},
    args: {},
    ignore: await loadDockerignore(contextDir),
    cmdSet: false,
  };
  const log = opts.log ?? (() => {});
  const steps: BuildResult['steps'] = [];
  let state: BuildState | undefined;
  for (let i = 0; i < instructions.length; i++) {
    const ins = instructions[i];
    log(`Step ${i + 1}/${instructions.length} : ${ins.text}`);
    const r = await runInstruction(ctx, state, ins);
    state = r.state;
    steps.push({ text: ins.text, cached: r.cached });
    if (r.cached) log(' ---> Using cache');
    if (state.digest) log(` ---> ${state.manifest.config.digest.slice(7, 19)}`);
  }
  if (opts.labels && Object.keys(opts.labels).length) {
    state = await metaStep(ctx, state!, `LABEL ${Object.entries(opts.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => ({ Labels: { ...(c.Labels ?? {}), ...opts.labels } }));
  }
  if (!state?.digest) throw invalid('the Dockerfile produced no image (only FROM scratch); add at least one instruction');
  const image = await store.putImage(state.manifest, state.config, opts.tags ?? [], opts.onProgress);
  if (image.manifestDigest !== state.digest) {
    throw new JiffyError('internal', `build: stored manifest ${image.manifestDigest} differs from the built ${state.digest}`);
  }
  return { image, steps };
}

async function runInstruction(ctx: StepContext, state: BuildState | undefined, ins: Instruction): Promise<{ state: BuildState; cached: boolean }> {
  if (ins.kind === 'ARG') {
    const v = ctx.opts.buildArgs?.[ins.name] ?? (ins.default !== undefined ? expandVars(ins.default, ctx.vars) : undefined);
    if (v !== undefined) ctx.args[ins.name] = ctx.vars[ins.name] = v;
    return { state: state ?? (await fromStep(ctx, 'scratch')), cached: false };
  }
  if (ins.kind === 'FROM') return { state: await fromStep(ctx, expandVars(ins.image, ctx.vars)), cached: false };
  if (!state) throw invalid(`line ${ins.line}: ${ins.kind} before FROM`);
  const before = ctx.cache.key(state.digest, ins.text, varsKey(ctx));
  switch (ins.kind) {
    case 'COPY':
    case 'ADD':
      return copyStep(ctx, state, ins);
    case 'RUN':
      return runStep(ctx, state, ins);
    default: {
      const hit = ctx.opts.noCache ? undefined : await ctx.cache.get(before);
      if (hit) {
        syncVars(ctx, hit);
        return { state: hit, cached: true };
      }
      const next = await metaInstruction(ctx, state, ins);
      await ctx.cache.put(before, next.digest!);
      return { state: next, cached: false };
    }
  }
}

/** Keeps `$VAR` expansion in step with the image's ENV. */
export function syncVars(ctx: StepContext, state: BuildState): void {
  for (const e of state.config.config?.Env ?? []) {
    const eq = e.indexOf('=');
    if (eq > 0) ctx.vars[e.slice(0, eq)] = e.slice(eq + 1);
  }
}

async function fromStep(ctx: StepContext, ref: string): Promise<BuildState> {
  if (ref === 'scratch') {
    const config: ImageConfig = { ...hostPlatform(), rootfs: { type: 'layers', diff_ids: [] }, config: {}, history: [] };
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: '', size: 0 }, layers: [] };
    return { digest: null, manifest, config };
  }
  const resolve = ctx.opts.resolveBase ?? ((r: string) => ctx.store.resolve(r));
  const img = await resolve(ref).catch((e: unknown) => {
    throw new JiffyError('not_found', `FROM ${ref}: ${(e as Error).message}`, { cause: e });
  });
  // Rebuilt as an OCI manifest so the steps' layers and the base's share one media-type family.
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: img.configDigest, size: 0 },
    layers: img.manifest.layers.map((l) => ({ mediaType: toOciLayerType(l.mediaType), digest: l.digest, size: l.size })),
  };
  const state = await saveState(ctx.store.content, manifest, structuredClone(img.config));
  syncVars(ctx, state);
  return state;
}

function toOciLayerType(mt: string): string {
  if (mt === MediaTypes.dockerLayerGzip) return MediaTypes.ociLayerGzip;
  if (mt === MediaTypes.dockerLayer) return MediaTypes.ociLayer;
  return mt;
}

/** A new state = `state` + an `empty_layer` history entry + a config change. */
export async function metaStep(ctx: StepContext, state: BuildState, createdBy: string, patch: (c: ContainerConfig) => Partial<ContainerConfig>): Promise<BuildState> {
  const prev = state.config;
  const config: ImageConfig = {
    ...prev,
    created: ctx.created,
    config: { ...(prev.config ?? {}), ...patch(prev.config ?? {}) },
    rootfs: { type: 'layers', diff_ids: [...prev.rootfs.diff_ids] },
    history: [...(prev.history ?? []), { created: ctx.created, created_by: createdBy, empty_layer: true }],
  };
  return saveState(ctx.store.content, state.manifest, config);
}

async function metaInstruction(ctx: StepContext, state: BuildState, ins: Instruction): Promise<BuildState> {
  const x = (s: string) => expandVars(s, ctx.vars);
  switch (ins.kind) {
    case 'ENV': {
      const pairs = ins.pairs.map(([k, v]) => [k, x(v)] as [string, string]);
      const next = await metaStep(ctx, state, `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => ({ Env: mergeEnv(c.Env ?? [], pairs) }));
      syncVars(ctx, next);
      return next;
    }
    case 'LABEL': {
      const pairs = ins.pairs.map(([k, v]) => [x(k), x(v)] as [string, string]);
      return metaStep(ctx, state, `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => ({ Labels: { ...(c.Labels ?? {}), ...Object.fromEntries(pairs) } }));
    }
    case 'WORKDIR': {
      return workdirStep(ctx, state, path.posix.resolve(state.config.config?.WorkingDir || '/', x(ins.value)));
    }
    case 'USER':
      return metaStep(ctx, state, `USER ${x(ins.value)}`, () => ({ User: x(ins.value) }));
    case 'EXPOSE': {
      const ports = ins.ports.map((p) => (p.includes('/') ? x(p) : `${x(p)}/tcp`));
      return metaStep(ctx, state, `EXPOSE map[${ports.map((p) => `${p}:{}`).join(' ')}]`, (c) => ({ ExposedPorts: { ...(c.ExposedPorts ?? {}), ...Object.fromEntries(ports.map((p) => [p, {}])) } }));
    }
    case 'CMD':
      ctx.cmdSet = true;
      return metaStep(ctx, state, `CMD ${JSON.stringify(ins.args)}`, () => ({ Cmd: ins.args }));
    case 'ENTRYPOINT':
      // Docker: a new ENTRYPOINT drops an inherited CMD, but not one set earlier in this file.
      return metaStep(ctx, state, `ENTRYPOINT ${JSON.stringify(ins.args)}`, (c) => ({ Entrypoint: ins.args, Cmd: ctx.cmdSet ? c.Cmd : undefined }));
    default:
      throw invalid(`line ${ins.line}: ${ins.kind} is not a metadata instruction`);
  }
}

function mergeEnv(env: string[], pairs: Array<[string, string]>): string[] {
  const out = [...env];
  for (const [k, v] of pairs) {
    const i = out.findIndex((e) => e.startsWith(`${k}=`));
    if (i >= 0) out[i] = `${k}=${v}`;
    else out.push(`${k}=${v}`);
  }
  return out;
}

async function runStep(ctx: StepContext, state: BuildState, ins: Extract<Instruction, { kind: 'RUN' }>): Promise<{ state: BuildState; cached: boolean }> {
  const createdBy = `RUN ${ins.command.join(' ')} # buildkit`;
  const key = ctx.cache.key(state.digest, `RUN ${JSON.stringify(ins.command)}`, varsKey(ctx));
  const hit = ctx.opts.noCache ? undefined : await ctx.cache.get(key);
  if (hit) return { state: hit, cached: true };
  if (!ctx.opts.runStep || !ctx.opts.commitRun) {
    throw precondition(`line ${ins.line}: RUN is not supported yet in this build of jiffy (it needs the containers layer to run a step); put prepared files in the build context and COPY them instead`);
  }
  const image = await ctx.store.putImage(state.manifest, state.config, []);
  const c = state.config.config ?? {};
  const env = mergeEnv(Object.entries(ctx.args).map(([k, v]) => `${k}=${v}`), (c.Env ?? []).map(splitEnv));
  const { upperDir, cleanup } = await ctx.opts.runStep({ image, command: ins.command, env, workdir: c.WorkingDir || '/', user: c.User, log: ctx.opts.log ?? (() => {}) });
  try {
    const next = await ctx.opts.commitRun(state, upperDir, createdBy, ctx.created);
    await ctx.cache.put(key, next.digest!);
    return { state: next, cached: false };
  } finally {
    await cleanup();
  }
}

/** The variables a step's expansion can see, for its cache key (ARG values are not in the parent). */
export function varsKey(ctx: StepContext): string {
  return JSON.stringify(Object.entries(ctx.args).sort());
}

function splitEnv(e: string): [string, string] {
  const eq = e.indexOf('=');
  return eq < 0 ? [e, ''] : [e.slice(0, eq), e.slice(eq + 1)];
}
