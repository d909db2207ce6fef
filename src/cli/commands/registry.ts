import type { Command } from 'commander';
import { invalid } from '../../errors.js';
import { defaultRoot } from '../../paths.js';
import { ImageStore } from '../../images/store.js';
import { pullImage, remoteReference } from '../../registry/pull.js';
import { pushImage } from '../../registry/push.js';
import { RegistryClient } from '../../registry/client.js';
import { removeCredentials, saveCredentials, type Credentials } from '../../registry/credentials.js';
import { createProgressRenderer } from '../progress.js';

interface RemoteFlags {
  user?: string;
  password?: string;
  passwordStdin?: boolean;
  insecure?: boolean;
}

/** `jiffy pull`, `jiffy push`, `jiffy login`, `jiffy logout` (OCI distribution API). */
export function register(program: Command): void {
  remoteFlags(program.command('pull').description('pull an image from a registry (HOST[:PORT]/NAME[:TAG|@DIGEST])'))
    .argument('<ref>', 'image reference with a registry, e.g. 127.0.0.1:5000/app:1')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image (default: this host)')
    .action(async (ref: string, o: RemoteFlags & { platform?: string }) => {
      const store = await ImageStore.open(defaultRoot());
      const progress = createProgressRenderer(process.stderr);
      try {
        const r = await pullImage(store, ref, { credentials: await credsFrom(o), insecure: o.insecure, platform: parsePlatform(o.platform), onProgress: progress });
        progress.close();
        console.log(`Digest: ${r.digest}`);
        console.log(`Status: ${r.downloaded ? 'Downloaded newer image' : 'Image is up to date'} for ${ref} (${r.downloaded} layers downloaded, ${r.skipped} already present)`);
      } finally {
        progress.close();
      }
    });

  remoteFlags(program.command('push').description('push a local image to a registry'))
    .argument('<ref>', 'local image (its name must include the registry unless DEST is given)')
    .argument('[dest]', 'remote reference, e.g. 127.0.0.1:5000/app:1')
    .option('--chunk-size <bytes>', 'upload blobs in PATCH chunks of this size', (v) => Number(v))
    .option('--mount-from <repo>', 'try cross-repository blob mounts from this repository first')
    .action(async (ref: string, dest: string | undefined, o: RemoteFlags & { chunkSize?: number; mountFrom?: string }) => {
      if (o.chunkSize !== undefined && !(Number.isInteger(o.chunkSize) && o.chunkSize > 0)) throw invalid('--chunk-size needs a positive number of bytes');
      const store = await ImageStore.open(defaultRoot());
      const progress = createProgressRenderer(process.stderr);
      try {
        const r = await pushImage(store, ref, { dest, credentials: await credsFrom(o), insecure: o.insecure, chunkSize: o.chunkSize, mountFrom: o.mountFrom, onProgress: progress });
        progress.close();
        console.log(`${r.ref}: digest: ${r.digest} size: ${r.size}`);
      } finally {
        progress.close();
      }
    });

  program
    .command('login')
    .description('store credentials for a registry in $JIFFY_ROOT/auth.json (mode 0600)')
    .argument('<registry>', 'HOST[:PORT]')
    .option('-u, --user <name>', 'user name')
    .option('-p, --password <secret>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--insecure', 'plain http for a non-loopback registry')
    .action(async (registry: string, o: RemoteFlags) => {
      const creds = await credsFrom(o);
      if (!creds) throw invalid('jiffy login needs --user and a password (--password-stdin or --password)');
      await checkLogin(registry, creds, o.insecure);
      await saveCredentials(defaultRoot(), registry, creds);
      console.log(`Login Succeeded (${registry})`);
    });

  program
    .command('logout')
    .description('forget the credentials stored for a registry')
    .argument('<registry>', 'HOST[:PORT]')
    .action(async (registry: string) => {
      const had = await removeCredentials(defaultRoot(), registry);
      console.log(had ? `Removed login credentials for ${registry}` : `Not logged in to ${registry}`);
    });
}

function remoteFlags(cmd: Command): Command {
  return cmd
    .option('-u, --user <name>', 'registry user (default: stored login or JIFFY_REGISTRY_AUTH)')
    .option('-p, --password <secret>', 'registry password')
    .option('--password-stdin', 'read the registry password from stdin')
    .option('--insecure', 'plain http for a non-loopback registry');
}

async function credsFrom(o: RemoteFlags): Promise<Credentials | undefined> {
  if (!o.user) {
    if (o.password || o.passwordStdin) throw invalid('a password needs --user');
    return undefined;
  }
  let password = o.password;
  if (o.passwordStdin) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  if (password === undefined) throw invalid(`--user ${o.user} needs --password-stdin (or --password)`);
  return { username: o.user, password };
}

/** Checks the credentials against GET /v2/ (answering its challenge) before storing them. */
async function checkLogin(registry: string, creds: Credentials, insecure?: boolean): Promise<void> {
  remoteReference(`${registry}/probe`);
  const client = new RegistryClient({ registry, repository: 'probe', credentials: creds, insecure });
  const res = await client.request('GET', '');
  await client.ensureOk(res, 'login (GET /v2/)');
  await res.body?.cancel();
}

function parsePlatform(s: string | undefined): { os: string; architecture: string; variant?: string } | undefined {
  if (!s) return undefined;
  const [os, architecture, variant] = s.split('/');
  if (!os || !architecture) throw invalid(`--platform ${s}: expected OS/ARCH, e.g. linux/amd64`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}
