/**
 * `USER` / `-u` resolution through the image's own /etc/passwd and /etc/group (read inside the
 * rootfs in scope, so a symlinked passwd cannot make us read the host's). Accepted forms: `name`,
 * `uid`, `name:group`, `uid:gid`, and mixes. A name that is not in the image is an error, like docker.
 */
import fs from 'node:fs/promises';
import { JiffyError } from '../errors.js';
import { resolveInRoot } from './rootfs-path.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

async function readTable(rootfs: string, file: string): Promise<string[][]> {
  const p = await resolveInRoot(rootfs, file);
  const text = await fs.readFile(p, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
}

const isNum = (s: string) => /^\d+$/.test(s);

/** Resolve `spec` (empty → root) against the rootfs at `rootfs`. */
export async function resolveUser(rootfs: string, spec: string | undefined): Promise<ResolvedUser> {
  if (!spec) spec = '0';
  const [userPart, groupPart] = spec.split(':', 2);
  const passwd = await readTable(rootfs, '/etc/passwd');
  const entry = passwd.find((f) => (isNum(userPart) ? f[2] === userPart : f[0] === userPart));
  if (!entry && !isNum(userPart)) {
    throw new JiffyError('invalid_argument', `unable to find user ${userPart}: no matching entries in the image's /etc/passwd; use a numeric uid or add the user to the image`);
  }
  const uid = isNum(userPart) ? Number(userPart) : Number(entry![2]);
  let gid = entry ? Number(entry[3]) : 0;
  const groups = await readTable(rootfs, '/etc/group');
  if (groupPart !== undefined) {
    if (isNum(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((f) => f[0] === groupPart);
      if (!g) throw new JiffyError('invalid_argument', `unable to find group ${groupPart}: no matching entries in the image's /etc/group`);
      gid = Number(g[2]);
    }
  }
  const name = entry?.[0];
  const additionalGids = groupPart === undefined && name
    ? groups.filter((g) => (g[3] ?? '').split(',').includes(name)).map((g) => Number(g[2])).filter((g) => g !== gid)
    : [];
  return { uid, gid, additionalGids, home: entry?.[5] || '/' };
}
