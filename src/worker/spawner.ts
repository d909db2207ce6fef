import type { Readable, Writable } from 'node:stream';
import type { FunctionVersion } from '../functions/spec.js';

/**
 * How a worker gets a process for a function: the production implementation
 * (./container-spawner.ts) boots a container through the launcher's fork server from the
 * function's image; the interface exists so the pool and instance logic stay independent of it.
 */
export interface ExitInfo {
  exitCode: number | null;
  signal: string | number | null;
  oomKilled: boolean;
  peakMemoryBytes?: number;
}

export interface SpawnedProcess {
  readonly pid: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves once, when the process has exited and its resources are released. */
  wait(): Promise<ExitInfo>;
  kill(signal?: NodeJS.Signals | number): void;
}

export interface SpawnRequest {
  /** Unique per process (container id). */
  id: string;
  fn: FunctionVersion;
  args: string[];
  env: Record<string, string>;
  cwd: string;
}

export interface Spawner {
  /** Makes sure `fn`'s image is usable here (layers present/unpacked) so invocations never wait on it. */
  prepare(fn: FunctionVersion): Promise<void>;
  spawn(req: SpawnRequest): Promise<SpawnedProcess>;
  close(): Promise<void>;
}

/** Where function code lives inside the container. */
export const TASK_ROOT = '/var/task';
/** Where the runtime images carry Jiffy's shims. */
export const SHIM_DIR = '/opt/jiffy';
