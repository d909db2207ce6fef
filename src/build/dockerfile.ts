import { invalid } from '../errors.js';

/**
 * The Dockerfile subset Jiffy builds: FROM, COPY, ADD, RUN, ENV, ARG, WORKDIR, CMD, ENTRYPOINT,
 * USER, LABEL, EXPOSE; `\` line continuations, `#` comments, JSON (exec) and shell forms.
 * Parsing is pure (no file system); the builder interprets the instructions in order.
 */
export type Instruction =
  | { kind: 'FROM'; line: number; text: string; image: string }
  | { kind: 'COPY' | 'ADD'; line: number; text: string; sources: string[]; dest: string; chown?: string; chmod?: string }
  | { kind: 'RUN'; line: number; text: string; command: string[]; shell: boolean }
  | { kind: 'CMD' | 'ENTRYPOINT'; line: number; text: string; args: string[]; shell: boolean }
  | { kind: 'ENV' | 'LABEL'; line: number; text: string; pairs: Array<[string, string]> }
  | { kind: 'ARG'; line: number; text: string; name: string; default?: string }
  | { kind: 'WORKDIR' | 'USER'; line: number; text: string; value: string }
  | { kind: 'EXPOSE'; line: number; text: string; ports: string[] };

export const SUPPORTED = ['FROM', 'COPY', 'ADD', 'RUN', 'ENV', 'ARG', 'WORKDIR', 'CMD', 'ENTRYPOINT', 'USER', 'LABEL', 'EXPOSE'];

/** Parses Dockerfile text; errors name the line and say what is supported. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  for (const { line, body } of logicalLines(text)) {
    const m = /^(\S+)\s*([\s\S]*)$/.exec(body);
    if (!m) continue;
    const kind = m[1].toUpperCase();
    const args = m[2].trim();
    out.push(parseInstruction(kind, args, line, body));
  }
  if (out.length === 0) throw invalid('the Dockerfile has no instructions; it must start with FROM');
  const first = out.find((i) => i.kind !== 'ARG');
  if (first?.kind !== 'FROM') {
    throw invalid(`line ${first?.line ?? out[0].line}: the first instruction must be FROM (only ARG may come before it)`);
  }
  if (out.filter((i) => i.kind === 'FROM').length !== 1) {
    throw invalid('the Dockerfile must have exactly one FROM: multi-stage builds are not supported by jiffy build');
  }
  return out;
}

/** Joins `\`-continued lines and drops comments / blank lines, remembering each start line. */
function* logicalLines(text: string): Generator<{ line: number; body: string }> {
  const lines = text.split(/\r?\n/);
  let buf = '';
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    // Docker drops comment lines even in the middle of a continued instruction.
    if (/^\s*#/.test(raw) || (buf === '' && raw.trim() === '')) continue;
    if (buf === '') start = i + 1;
    if (/\\\s*$/.test(raw)) {
      buf += raw.replace(/\\\s*$/, '') + ' ';
      continue;
    }
    buf += raw;
    if (buf.trim()) yield { line: start, body: buf.trim() };
    buf = '';
  }
  if (buf.trim()) yield { line: start, body: buf.trim() };
}

function parseInstruction(kind: string, args: string, line: number, text: string): Instruction {
  const need = (what: string) => {
    if (!args) throw invalid(`line ${line}: ${kind} needs ${what}`);
  };
  switch (kind) {
    case 'FROM': {
      need('an image name (or scratch)');
      const parts = args.split(/\s+/);
      if (parts[0].startsWith('--')) throw invalid(`line ${line}: FROM flags (${parts[0]}) are not supported`);
      if (parts.length === 3 && parts[1].toUpperCase() === 'AS') {
        throw invalid(`line ${line}: "FROM … AS name" (multi-stage) is not supported by jiffy build`);
      }
      if (parts.length !== 1) throw invalid(`line ${line}: FROM takes one image reference`);
      return { kind, line, text, image: parts[0] };
    }
    case 'COPY':
    case 'ADD':
      need('a source and a destination');
      return parseCopy(kind, args, line, text);
    case 'RUN': {
      need('a command');
      const json = tryJsonArray(args);
      return { kind, line, text, command: json ?? ['/bin/sh', '-c', args], shell: !json };
    }
    case 'CMD':
    case 'ENTRYPOINT': {
      need('a command');
      const json = tryJsonArray(args);
      return { kind, line, text, args: json ?? ['/bin/sh', '-c', args], shell: !json };
    }
    case 'ENV':
    case 'LABEL':
      need('KEY=VALUE');
      return { kind, line, text, pairs: parsePairs(kind, args, line) };
    case 'ARG': {
      need('a name');
      const eq = args.indexOf('=');
      const name = eq < 0 ? args : args.slice(0, eq);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw invalid(`line ${line}: bad ARG name "${name}"`);
      return eq < 0 ? { kind, line, text, name } : { kind, line, text, name, default: unquote(args.slice(eq + 1)) };
    }
    case 'WORKDIR':
    case 'USER':
      need('a value');
      return { kind, line, text, value: unquote(args) };
    case 'EXPOSE':
      need('a port');
      return { kind, line, text, ports: args.split(/\s+/) };
    default:
      throw invalid(`line ${line}: unknown or unsupported instruction "${kind}"; jiffy build supports ${SUPPORTED.join(', ')}`);
  }
}

function parseCopy(kind: 'COPY' | 'ADD', args: string, line: number, text: string): Instruction {
  let rest = args;
  let chown: string | undefined;
  let chmod: string | undefined;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
    if (!m) break;
    if (m[1] === 'chown') chown = m[2];
    else if (m[1] === 'chmod') chmod = m[2];
    else if (m[1] === 'from') throw invalid(`line ${line}: ${kind} --from (multi-stage) is not supported by jiffy build`);
    else throw invalid(`line ${line}: ${kind} flag --${m[1]} is not supported (only --chown and --chmod)`);
    rest = rest.slice(m[0].length);
  }
  const parts = tryJsonArray(rest) ?? splitWords(rest);
  if (parts.length < 2) throw invalid(`line ${line}: ${kind} needs at least one source and a destination`);
  if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) throw invalid(`line ${line}: --chmod must be octal, e.g. 0755`);
  return { kind, line, text, sources: parts.slice(0, -1), dest: parts[parts.length - 1], chown, chmod };
}

/** `["a","b"]` → array of strings, or undefined when it is not a JSON array of strings. */
function tryJsonArray(s: string): string[] | undefined {
  if (!s.startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(s);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // Docker treats a malformed JSON form as shell form; so do we.
  }
  return undefined;
}

/** Splits on whitespace honouring "double" and 'single' quotes and backslash escapes. */
export function splitWords(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) words.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
    }
  }
  if (quote) throw invalid(`unterminated ${quote} quote in: ${s}`);
  if (has || cur) words.push(cur);
  return words;
}

function unquote(s: string): string {
  const w = splitWords(s.trim());
  return w.length === 1 ? w[0] : s.trim();
}

/** ENV/LABEL: `K=V K2="v 2"`, or the legacy one-pair form `ENV K some value`. */
function parsePairs(kind: string, args: string, line: number): Array<[string, string]> {
  const first = /^([^\s=]+)(\s+|=|$)/.exec(args);
  if (first && first[2] !== '=') {
    const value = args.slice(first[0].length);
    if (!value) throw invalid(`line ${line}: ${kind} ${first[1]} needs a value (${kind} KEY=VALUE)`);
    return [[first[1], value]];
  }
  return splitWords(args).map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalid(`line ${line}: ${kind} expects KEY=VALUE pairs, got "${w}"`);
    return [w.slice(0, eq), w.slice(eq + 1)] as [string, string];
  });
}

/**
 * Expands `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alt}` from `env` (Docker's rules for
 * ENV, WORKDIR, COPY, ADD, USER, LABEL, EXPOSE); `\$` stays a literal dollar.
 */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, braced, op, word, bare) => {
    if (m === '\\$') return '$';
    const name = (braced ?? bare) as string;
    const v = env[name];
    if (op === '-') return v ? v : (word as string);
    if (op === '+') return v ? (word as string) : '';
    return v ?? '';
  });
}
