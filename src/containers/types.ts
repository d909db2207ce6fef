/**
 * The container record (`containers/<id>/state.json`) and the options that create one. Status
 * words follow docker (created, running, paused, exited); the OCI runtime's own states (creating,
 * created, running, stopped) stay inside the launcher.
 */
import type { ImageConfig } from '../images/types.js';
import type { RuntimeProfile } from './runtime.js';

export type ContainerStatus = 'created' | 'running' | 'paused' | 'exited';

/** A bind mount from `-v HOST:CTR[:ro]`. */
export interface BindMount {
  source: string;
  destination: string;
  readonly: boolean;
}

/** What the container runs and with which limits; fixed at create time. */
export interface ContainerSpecOptions {
  /** Replaces the image Entrypoint (`--entrypoint`); an empty array clears it. */
  entrypoint?: string[];
  /** Replaces the image Cmd. */
  cmd?: string[];
  /** Extra `K=V` entries, appended over the image Env. */
  env?: string[];
  workdir?: string;
  /** `name`, `uid`, `name:group` or `uid:gid`; resolved through the image's /etc/passwd and /etc/group. */
  user?: string;
  hostname?: string;
  memoryBytes?: number;
  cpus?: number;
  pidsLimit?: number;
  network?: 'none' | 'host';
  binds?: BindMount[];
  readonlyRoot?: boolean;
  /**
   * The process's capability set (bounding, effective, permitted; OCI names like `CAP_CHOWN`),
   * replacing docker's default set; `[]` = none, even for uid 0. Default: docker's set.
   */
  capabilities?: string[];
}

/** Options for ContainerManager.create / run. */
export interface CreateOptions extends ContainerSpecOptions {
  image: string;
  name?: string;
  /** Remove the container (and its rootfs) when it exits. */
  autoRemove?: boolean;
  /** Size at which the log file rotates (default 10 MiB). */
  logMaxBytes?: number;
}

/** Exit information, as the launcher reports it. */
export interface ExitInfo {
  exitCode: number;
  signal?: string;
  oomKilled: boolean;
  peakMemoryBytes?: number;
  finishedAt: string;
  error?: string;
}

/** Runtime state; written temp-then-rename by whoever owns the container's process. */
export interface ContainerState {
  status: ContainerStatus;
  pid?: number;
  /** /proc/<pid>/stat start time, to tell our process from a reused pid. */
  pidStart?: string;
  monitorPid?: number;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  signal?: string;
  oomKilled?: boolean;
  peakMemoryBytes?: number;
  error?: string;
  restartCount?: number;
}

/** Everything recorded about one container. */
export interface ContainerRecord {
  id: string;
  name: string;
  created: string;
  image: string;
  imageId: string;
  /** The resolved command: entrypoint + cmd. */
  path: string;
  args: string[];
  options: CreateOptions;
  /** The resolved process settings the OCI config was built with. */
  process: { env: string[]; cwd: string; uid: number; gid: number; additionalGids: number[] };
  state: ContainerState;
  /** Runtime (OCI) id, the runtime it was created with, and its cgroup (`jiffy/<id>`). */
  runtimeId: string;
  runtime: RuntimeProfile;
  cgroupPath: string;
  /** The bundle directory (its config.json is what the runtime ran); absent in older records. */
  bundle?: string;
  /** The image config at create time (used by commit for created_by and the new config). */
  imageConfig: ImageConfig;
}
