/**
 * The worker ⇄ runtime-shim protocol (runtime-images/node/shim.mjs, runtime-images/python/shim.py).
 *
 * Requests: one JSON object per line on the shim's stdin.
 * Replies: one JSON object per line on the shim's stdout, each prefixed with `replyTag(nonce)`.
 * The nonce is random per instance (env JIFFY_NONCE), so bytes a handler or its child processes
 * write straight to fd 1 are never taken for a reply: untagged text is treated as log output.
 * Newline-delimited JSON keeps both shims trivial (no binary framing in user-facing runtimes);
 * binary events and results travel base64-encoded with an `...Encoding: 'base64'` marker.
 */

/** Context every handler receives (node: `context`, python: a dict with the same keys). */
export interface InvocationContext {
  invocationId: string;
  functionName: string;
  functionVersion: number;
  memoryLimitMb: number;
  deadlineMs: number;
}

export interface ShimRequest {
  id: string;
  event: unknown;
  eventEncoding?: 'base64';
  context: InvocationContext;
}

export interface ShimErrorJson {
  name: string;
  message: string;
  stack?: string;
}

export type ShimReply =
  | { type: 'ready'; pid?: number }
  | { type: 'init_error'; error: ShimErrorJson }
  | { type: 'result'; id: string; ok: true; result: unknown; resultEncoding?: 'base64'; logs?: string }
  | { type: 'result'; id: string; ok: false; error: ShimErrorJson; logs?: string };

/** The tag that starts every reply line of an instance. */
export function replyTag(nonce: string): string {
  return `\x1eJIFFY${nonce} `;
}

/** Encodes one request line. */
export function encodeRequest(req: ShimRequest): string {
  return JSON.stringify(req) + '\n';
}

/**
 * Splits a shim's stdout into replies and stray output. Feed it chunks; it calls `onReply` for
 * each tagged line and `onStray` for anything else (which the worker files under logs).
 */
export class ReplyParser {
  private buf = '';
  private readonly tag: string;

  constructor(nonce: string, private readonly onReply: (r: ShimReply) => void, private readonly onStray: (text: string) => void) {
    this.tag = replyTag(nonce);
  }

  /** Feeds one chunk of stdout. */
  push(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      this.line(line);
    }
  }

  private line(line: string): void {
    const at = line.indexOf(this.tag);
    if (at < 0) {
      this.onStray(line + '\n');
      return;
    }
    if (at > 0) this.onStray(line.slice(0, at));
    let msg: ShimReply;
    try {
      msg = JSON.parse(line.slice(at + this.tag.length)) as ShimReply;
    } catch {
      this.onStray(line + '\n');
      return;
    }
    this.onReply(msg);
  }
}
