/**
 * Test and bench fixtures: a minimal busybox root filesystem and an OCI bundle around it.
 * The same bundle runs under jiffy-launch, crun, runc and bwrap, which is what makes the
 * conformance suite and the boot benchmark comparable side by side.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from '../../src/paths.js';

/** Debian's busybox-static: a static binary, so the rootfs needs no libc. */
export const BUSYBOX = '/bin/busybox';

/** The probe binary the launcher tests run inside containers (built by `make -C native`). */
export function probeBinary(): string {
  return path.join(repoRoot(), 'native', 'build', 'jiffy-probe');
}

let appletCache: string[] | undefined;

/** Applet names from `busybox --list`, computed once per process. */
function applets(): string[] {
  if (!appletCache) {
    if (!existsSync(BUSYBOX)) {
      throw new Error(`${BUSYBOX} is missing: install the Debian package busybox-static (apt-get install busybox-static)`);
    }
    const out = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' });
    appletCache = out.split('\n').map((s) => s.trim()).filter((s) => s && !s.includes('/') && s !== 'busybox');
  }
  return appletCache;
}

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nnogroup:x:65534:\n';

/**
 * Build a minimal rootfs in `dir` (created if missing): /bin/busybox with one symlink per applet,
 * /etc/passwd and /etc/group (root and nobody 65534), empty /tmp /proc /dev /sys /mnt /root, and
 * /bin/probe when native/build/jiffy-probe exists.
 */
export async function makeBusyboxRootfs(dir: string): Promise<void> {
  const names = applets();
  await Promise.all(
    ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys', 'mnt', 'root'].map((d) => fs.mkdir(path.join(dir, d), { recursive: true })),
  );
  await fs.chmod(path.join(dir, 'tmp'), 0o1777);
  await fs.copyFile(BUSYBOX, path.join(dir, 'bin', 'busybox'));
  await fs.chmod(path.join(dir, 'bin', 'busybox'), 0o755);
  await Promise.all(
    names.map((n) => fs.symlink('busybox', path.join(dir, 'bin', n)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    })),
  );
  await fs.writeFile(path.join(dir, 'etc', 'passwd'), PASSWD);
  await fs.writeFile(path.join(dir, 'etc', 'group'), GROUP);
  await fs.writeFile(path.join(dir, 'etc', 'hostname'), 'jiffy\n');
  const probe = probeBinary();
  if (existsSync(probe)) {
    await fs.copyFile(probe, path.join(dir, 'bin', 'probe'));
    await fs.chmod(path.join(dir, 'bin', 'probe'), 0o755);
  }
}

/**
 * Write `config.json` (the OCI runtime spec) into bundle `dir`, next to `rootfs/`.
 * The spec's `root.path` should be "rootfs" (relative) for the bundle to be relocatable.
 */
export async function makeBundle(dir: string, spec: object): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
}

/** makeBusyboxRootfs in `<dir>/rootfs` plus makeBundle in `dir`. */
export async function makeBusyboxBundle(dir: string, spec: object): Promise<void> {
  await makeBusyboxRootfs(path.join(dir, 'rootfs'));
  await makeBundle(dir, spec);
}
