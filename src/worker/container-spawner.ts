import fs from 'node:fs/promises';
import path from 'node:path';
import type { ImageStore } from '../images/store.js';
import type { FunctionVersion } from '../functions/spec.js';
import { Launcher, defaultSpec } from '../launcher/index.js';
import { FunctionImages } from './function-image.js';
import { FUNCTION_UID } from './function-spec.js';
import { instancesDir, makeInstanceDir, staleInstanceDirs } from './instance-dirs.js';
import type { ExitInfo, SpawnedProcess, SpawnRequest, Spawner } from './spawner.js';


/**
 * Boots function processes as containers through the launcher's fork server: rootfs = overlay of
 * the function image's layers (mounted by the launcher inside the container's own mount
 * namespace, so it vanishes with the container — nothing to leak) with a fresh upper dir per
 * instance, removed after exit. Limits from the function's settings; uid 65534, no capabilities,
 * no_new_privs, network off unless the function asked for host networking.
 */
export class ContainerSpawner implements Spawner {
  private readonly images: FunctionImages;
  private readonly live = new Set<Promise<unknown>>();

  private constructor(private readonly store: ImageStore, private readonly launcher: Launcher) {
    this.images = new FunctionImages(store);
  }

  /** Starts a launcher fork server (`jiffy-launch serve`) for `store`. */
  static async start(store: ImageStore): Promise<ContainerSpawner> {
    return new ContainerSpawner(store, await Launcher.start({ stateRoot: path.join(store.paths.run, 'fn-serve') }));
  }

  /**
   * Removes instance dirs a dead worker left (its containers died with its fork server, which
   * exits when its client goes away; only the upper/work dirs remain).
   */
  async reapStale(): Promise<number> {
    const stale = await staleInstanceDirs(this.store.paths.root);
    for (const dir of stale) await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
    return stale.length;
  }

  async prepare(fn: FunctionVersion): Promise<void> {
    await this.images.get(fn);
  }

  async spawn(req: SpawnRequest): Promise<SpawnedProcess> {
    const p = await this.images.get(req.fn);
    const s = req.fn.settings;
    const dir = path.join(instancesDir(this.store.paths.root), req.id);
    await makeInstanceDir(dir, ['upper', 'work', 'merged']);
    const env = [...mergeEnv(p.env, { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/tmp', ...req.env })];
    const config = defaultSpec({
      args: req.args,
      rootPath: path.join(dir, 'merged'),
      env,
      cwd: req.cwd,
      hostname: req.fn.name.slice(0, 63),
      uid: FUNCTION_UID,
      gid: FUNCTION_UID,
      readonlyRoot: false,
      network: s.network,
      memoryBytes: s.memoryMb * 1024 * 1024,
      cpus: s.cpus,
      pidsLimit: 256,
      mounts: [{ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] }],
      capabilities: [],
    });
    let h;
    try {
      h = await this.launcher.boot({ id: req.id, config, rootfsOverlay: { lower: p.lower, upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), cwd: this.store.paths.root }, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
    } catch (e) {
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
    const waited = h.wait().then(
      (x): ExitInfo => ({ exitCode: x.signal ? null : x.exitCode, signal: x.signal, oomKilled: x.oomKilled, peakMemoryBytes: x.peakMemoryBytes }),
      // The fork server itself died: the container died with it (its namespaces were the server's children).
      (e: Error): ExitInfo => ({ exitCode: null, signal: `launcher failure: ${e.message}`, oomKilled: false }),
    ).finally(() => fs.rm(dir, { recursive: true, force: true }).catch(() => {}));
    this.live.add(waited);
    void waited.finally(() => this.live.delete(waited));
    return {
      pid: h.pid,
      stdin: h.stdin!,
      stdout: h.stdout!,
      stderr: h.stderr!,
      wait: () => waited,
      kill: (sig) => void h.kill(sig ?? 'SIGKILL').catch(() => {}),
    };
  }

  /** Waits for every container this spawner started to be gone, then stops the launcher. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.live]);
    await this.launcher.close();
  }
}

function* mergeEnv(image: string[], extra: Record<string, string>): Iterable<string> {
  const m = new Map<string, string>();
  for (const kv of image) {
    const eq = kv.indexOf('=');
    if (eq > 0) m.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  for (const [k, v] of Object.entries(extra)) m.set(k, v);
  for (const [k, v] of m) yield `${k}=${v}`;
}
