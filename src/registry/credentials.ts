import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { invalid, JiffyError } from '../errors.js';

/** A user name and password (or token) for one registry. */
export interface Credentials {
  username: string;
  password: string;
}

/**
 * Registry credentials, Docker's config.json model: `$JIFFY_ROOT/auth.json` holds
 * `{"auths": {"<registry>": {"auth": base64("user:password")}}}` with mode 0600. The environment
 * variable JIFFY_REGISTRY_AUTH (same JSON, or `registry=user:password[,…]`) takes precedence,
 * so CI can pass secrets without writing files.
 */
export interface AuthFile {
  auths: Record<string, { auth: string }>;
}

/** Path of the credentials file under a store root. */
export function authFilePath(root: string): string {
  return path.join(root, 'auth.json');
}

/** Credentials for `registry` from the environment, then the auth file; undefined if none. */
export async function lookupCredentials(root: string, registry: string): Promise<Credentials | undefined> {
  const env = process.env.JIFFY_REGISTRY_AUTH;
  if (env) {
    const fromEnv = parseEnvAuth(env)[registry];
    if (fromEnv) return decodeAuth(fromEnv.auth, 'JIFFY_REGISTRY_AUTH');
  }
  const file = await readAuthFile(root);
  const entry = file.auths[registry];
  return entry ? decodeAuth(entry.auth, authFilePath(root)) : undefined;
}

/** Stores credentials for `registry` (temp-then-rename, mode 0600). */
export async function saveCredentials(root: string, registry: string, creds: Credentials): Promise<void> {
  const file = await readAuthFile(root);
  file.auths[registry] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') };
  await writeAuthFile(root, file);
}

/** Forgets credentials for `registry`; false when there were none. */
export async function removeCredentials(root: string, registry: string): Promise<boolean> {
  const file = await readAuthFile(root);
  if (!file.auths[registry]) return false;
  delete file.auths[registry];
  await writeAuthFile(root, file);
  return true;
}

async function readAuthFile(root: string): Promise<AuthFile> {
  let text: string;
  try {
    text = await fs.readFile(authFilePath(root), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { auths: {} };
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<AuthFile>;
    return { auths: v.auths ?? {} };
  } catch (e) {
    throw new JiffyError('data_loss', `${authFilePath(root)} is not valid JSON; fix or delete it and log in again`, { cause: e });
  }
}

async function writeAuthFile(root: string, file: AuthFile): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  const dest = authFilePath(root);
  const tmp = `${dest}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  await fs.writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  await fs.rename(tmp, dest);
}

function parseEnvAuth(env: string): Record<string, { auth: string }> {
  const t = env.trim();
  if (t.startsWith('{')) {
    try {
      return (JSON.parse(t) as Partial<AuthFile>).auths ?? {};
    } catch (e) {
      throw invalid('JIFFY_REGISTRY_AUTH is not valid JSON; use {"auths":{...}} or registry=user:password', e);
    }
  }
  const out: Record<string, { auth: string }> = {};
  for (const part of t.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw invalid(`JIFFY_REGISTRY_AUTH entry "${part}" must be registry=user:password`);
    out[part.slice(0, eq).trim()] = { auth: Buffer.from(part.slice(eq + 1)).toString('base64') };
  }
  return out;
}

function decodeAuth(auth: string, where: string): Credentials {
  const s = Buffer.from(auth, 'base64').toString('utf8');
  const colon = s.indexOf(':');
  if (colon < 0) throw invalid(`credentials in ${where} are malformed (expected base64 of user:password); log in again`);
  return { username: s.slice(0, colon), password: s.slice(colon + 1) };
}
