/**
 * Sandboxes: long-lived containers for tests and untrusted code. A sandbox is one container of
 * Jiffy's ContainerManager kept running by an idle init, plus a small record of its own
 * (`sandboxes/<id>.json`: TTL expiry, limits, snapshots taken) so that the expiry survives a
 * restart of whoever manages it. The sandbox id is the container id.
 */
import type { Readable } from 'node:stream';

/** Options of SandboxManager.create; `image` and `from` are alternatives (`from` wins). */
export interface SandboxCreateOptions {
  /** Image to start from (default busybox:latest). */
  image?: string;
  /** A snapshot (image ref or id) to fork from; each fork gets its own upper dir over its layers. */
  from?: string;
  memoryMb?: number;
  cpus?: number;
  /** Network access: false (default) = own network namespace with loopback only; true = the host's. */
  network?: boolean;
  /** Seconds until the reaper removes the sandbox (default 300, at most 86400). */
  ttlS?: number;
  /** `KEY=VALUE` entries for every exec (over the image Env). */
  env?: string[];
  /** How many sandboxes to create with these options (default 1, at most 64). */
  count?: number;
  /**
   * Capabilities of the sandbox's processes (init and every exec), e.g. `CAP_CHOWN`. Default none:
   * processes run as uid 0 (files they write are root's) but hold no capability at all.
   */
  capabilities?: string[];
}

/** What is recorded about a sandbox (and returned by get/list). */
export interface Sandbox {
  id: string;
  /** The image it was created from (a snapshot ref for forks). */
  image: string;
  imageId: string;
  /** Set when the sandbox is a fork of a snapshot. */
  from?: string;
  created: string;
  /** ISO time at which the reaper removes it. */
  expiresAt: string;
  ttlS: number;
  memoryMb?: number;
  cpus?: number;
  network: boolean;
  env: string[];
  /**
   * The capabilities its processes hold (OCI names, sorted); empty = none. Absent in records made
   * before capabilities were an option (those sandboxes have docker's default set).
   */
  capabilities?: string[];
  /** Snapshots taken of this sandbox, oldest first. */
  snapshots: Array<{ ref: string; id: string; created: string }>;
  /** `running`, or `exited` when its init died (it can then only be snapshotted or removed). */
  status: 'running' | 'exited';
}

/** Options of SandboxManager.exec. */
export interface SandboxExecOptions {
  cmd: string[];
  /** Extra `KEY=VALUE` entries for this exec only. */
  env?: string[];
  /** Working directory inside the sandbox (default the image's WorkingDir or /). */
  cwd?: string;
  stdin?: Buffer | string | Readable;
  /** Kill the command after this many seconds (default 60; 0 = no limit). */
  timeoutS?: number;
  /** Stop after this much stdout+stderr (default 16 MiB): the command is killed, output cut there. */
  maxOutputBytes?: number;
}

/** How an exec ended. `signal` is the signal name when it was killed by one. */
export interface SandboxExecResult {
  exitCode: number;
  signal: string | null;
  timedOut: boolean;
  truncated: boolean;
}

/** A running exec: its output streams (end when it ends) and its outcome. */
export interface SandboxExecution {
  stdout: Readable;
  stderr: Readable;
  done: Promise<SandboxExecResult>;
  /** Kill the command now (e.g. the HTTP client went away). */
  kill(): void;
}

/** A snapshot: the image it became. */
export interface SandboxSnapshot {
  ref: string;
  id: string;
}
