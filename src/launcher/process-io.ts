/**
 * One booted or exec'd process as seen by the binding: its stdio streams (relayed as frames by
 * the server) and its exit. Flow control both ways:
 *   - stdin: a credit window. Writes go out at once; a write completes as soon as at most
 *     STDIN_WINDOW bytes sent are still unacknowledged by the server (acks say the bytes reached
 *     the pipe). Small messages (a warm instance's requests) thus never wait for a round trip
 *     through the server, while a producer faster than the process still stalls, with at most
 *     STDIN_WINDOW bytes queued in the server for this process.
 *   - stdout/stderr: when a Readable's buffer is full the server is asked to stop reading the
 *     pipe (pause-out) until the consumer reads again (resume-out).
 * The server sends both EOFs before the exit frame, so `wait()` resolves after the streams end.
 */
import { Readable, Writable } from 'node:stream';
import { JiffyError } from '../errors.js';
import { FrameType } from './frames.js';

/** How a process ended. */
export interface ExitStatus {
  exitCode: number;
  signal: string | null;
  oomKilled: boolean;
  peakMemoryBytes: number;
  cpuTimeUs: number;
  wallTimeUs: number;
}

type Send = (type: number, handle: number, payload?: Buffer) => void;

const STDIN_SLICE = 256 * 1024;
/** Unacknowledged stdin bytes a process may have queued in the server before writes stall. */
export const STDIN_WINDOW = 1024 * 1024;

export class ProcessIo {
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly exited: Promise<ExitStatus>;
  private resolveExit!: (s: ExitStatus) => void;
  private rejectExit!: (e: Error) => void;
  private sent = 0;
  private acked = 0;
  /** Writes that went out beyond the window: each completes once acked >= its `until`. */
  private waiters: { until: number; cb: (e?: Error | null) => void }[] = [];
  private outPaused = false;
  private done = false;

  constructor(readonly handle: number, private readonly send: Send, modes: { stdin: boolean; stdout: boolean; stderr: boolean }) {
    this.exited = new Promise((res, rej) => { this.resolveExit = res; this.rejectExit = rej; });
    this.exited.catch(() => undefined); // a caller that never waits must not cause an unhandled rejection
    this.stdout = modes.stdout ? this.readable() : null;
    this.stderr = modes.stderr ? this.readable() : null;
    this.stdin = modes.stdin ? this.writable() : null;
  }

  private readable(): Readable {
    return new Readable({
      read: () => {
        if (this.outPaused && !this.done) {
          this.outPaused = false;
          this.send(FrameType.resumeOut, this.handle);
        }
      },
    });
  }

  private writable(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (this.done) return cb(); // the process is gone: drop, as a closed pipe would
        for (let off = 0; off < chunk.length; off += STDIN_SLICE) {
          const part = chunk.subarray(off, off + STDIN_SLICE);
          this.sent += part.length;
          this.send(FrameType.stdin, this.handle, part);
        }
        if (this.sent - this.acked <= STDIN_WINDOW) return cb();
        this.waiters.push({ until: this.sent - STDIN_WINDOW, cb });
      },
      final: (cb) => {
        if (!this.done) this.send(FrameType.stdin, this.handle); // empty frame = close stdin
        cb();
      },
    });
  }

  /** stdout/stderr bytes (empty = EOF). */
  onOutput(which: 'stdout' | 'stderr', data: Buffer): void {
    const s = which === 'stdout' ? this.stdout : this.stderr;
    if (!s) return;
    if (data.length === 0) {
      s.push(null);
      return;
    }
    if (!s.push(data) && !this.outPaused) {
      this.outPaused = true;
      this.send(FrameType.pauseOut, this.handle);
    }
  }

  onStdinAck(n: number): void {
    this.acked += n;
    while (this.waiters.length && this.waiters[0].until <= this.acked) this.waiters.shift()!.cb();
  }

  onExit(status: ExitStatus): void {
    this.finish();
    this.resolveExit(status);
  }

  /** The server died or was closed: fail whatever is still open. */
  fail(err: JiffyError): void {
    if (this.done) return;
    this.finish();
    // End (not destroy with an error) the streams: an 'error' nobody listens for would crash the
    // caller; the rejected wait() is where the failure is reported.
    for (const s of [this.stdout, this.stderr]) if (s && !s.readableEnded) s.push(null);
    this.rejectExit(err);
  }

  private finish(): void {
    this.done = true;
    for (const w of this.waiters.splice(0)) w.cb();
  }
}
