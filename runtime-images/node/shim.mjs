// Jiffy node runtime shim: loads the handler once, then serves many invocations.
//
// Protocol (see src/functions/protocol.ts): requests are JSON lines on stdin; replies are JSON lines
// on stdout, each prefixed with a per-instance tag ("\x1eJIFFY<nonce> ") so stray bytes a child
// process writes straight to fd 1 can never be mistaken for a reply. Node cannot dup2(), so instead
// of moving fd 1 the shim keeps the real stdout stream for replies and routes process.stdout.write /
// console output into a per-invocation log buffer (AsyncLocalStorage keeps concurrent invocations
// apart); output outside an invocation goes to stderr.
import { AsyncLocalStorage } from 'node:async_hooks';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const TAG = `\x1eJIFFY${process.env.JIFFY_NONCE ?? ''} `;
const LOG_LIMIT = Number(process.env.JIFFY_LOG_LIMIT ?? 65536);
const root = process.env.JIFFY_TASK_ROOT ?? '/var/task';
const out = process.stdout;
const replyWrite = out.write.bind(out);
const errWrite = process.stderr.write.bind(process.stderr);
const current = new AsyncLocalStorage();

function send(msg) {
  replyWrite(TAG + JSON.stringify(msg) + '\n');
}

function capture(chunk, encoding, cb) {
  const buf = current.getStore();
  const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
  if (!buf) return errWrite(text, cb);
  if (buf.size < LOG_LIMIT) buf.parts.push(text);
  buf.size += text.length;
  if (typeof encoding === 'function') encoding();
  else if (typeof cb === 'function') cb();
  return true;
}
out.write = capture;
process.stderr.write = capture;

function errorJson(e) {
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: 'Error', message: typeof e === 'string' ? e : JSON.stringify(e) };
}

async function loadHandler() {
  const spec = process.env.JIFFY_HANDLER ?? 'index.handler';
  const dot = spec.lastIndexOf('.');
  const file = spec.slice(0, dot);
  const name = spec.slice(dot + 1);
  const base = path.resolve(root, file);
  const found = [base, `${base}.mjs`, `${base}.js`, `${base}.cjs`].find((p) => existsSync(p) && !p.endsWith('/'));
  if (!found) throw new Error(`handler file ${file}(.mjs|.js|.cjs) not found in ${root}`);
  const mod = await import(pathToFileURL(found).href);
  const fn = mod[name] ?? mod.default?.[name];
  if (typeof fn !== 'function') throw new Error(`${found} does not export a function named ${name}`);
  return fn;
}

function decodeEvent(req) {
  return req.eventEncoding === 'base64' ? Buffer.from(req.event, 'base64') : req.event;
}

function encodeResult(result) {
  if (result instanceof Uint8Array) return { result: Buffer.from(result).toString('base64'), resultEncoding: 'base64' };
  return { result: result === undefined ? null : result };
}

async function invoke(handler, req) {
  const logs = { parts: [], size: 0 };
  const deadline = req.context?.deadlineMs ?? Date.now() + 3600_000;
  const context = { ...req.context, getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) };
  const finish = (fields) => {
    let text = logs.parts.join('');
    if (logs.size > LOG_LIMIT) text = text.slice(0, LOG_LIMIT) + `\n[jiffy: logs truncated, ${logs.size} bytes written]\n`;
    send({ type: 'result', id: req.id, logs: text, ...fields });
  };
  await current.run(logs, async () => {
    try {
      finish({ ok: true, ...encodeResult(await handler(decodeEvent(req), context)) });
    } catch (e) {
      finish({ ok: false, error: errorJson(e) });
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (e) {
    send({ type: 'init_error', error: errorJson(e) });
    process.exitCode = 1;
    return;
  }
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (!line) return;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      errWrite(`jiffy shim: bad request line: ${e.message}\n`);
      return;
    }
    void invoke(handler, req);
  });
  rl.on('close', () => process.exit(0));
  send({ type: 'ready', pid: process.pid });
}

process.on('uncaughtException', (e) => {
  errWrite(`jiffy shim: uncaught exception: ${e?.stack ?? e}\n`);
  process.exit(70);
});
process.on('unhandledRejection', (e) => {
  errWrite(`jiffy shim: unhandled rejection: ${e?.stack ?? e}\n`);
  process.exit(70);
});
void main();
