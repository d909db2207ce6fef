/**
 * The runtimes bench/boot.ts compares, each booting /bin/true from the same OCI bundle.
 * CLI runtimes go through a timed bash driver (cli-driver.ts): what is timed is exactly one
 * `<runtime> run --bundle B ID` (or `bwrap …`, or `/bin/true`) from fork to exit as seen by bash.
 * The untimed `delete --force ID` after each boot keeps ids unique and state clean.
 * jiffy-serve is timed in-process: Launcher.boot() call to wait() resolving.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { OciRuntimeSpec } from '../../src/launcher/index.js';
import { launcherBinary } from '../../src/paths.js';
import { CliDriver, type DriverCommands } from './cli-driver.js';

/** One runtime under test. `boot` returns the boot's wall time in ms and throws on failure. */
export interface BootRunner {
  name: string;
  boot(id: string): Promise<number>;
  close(): Promise<void>;
}

/** Everything a runner needs: the bundle (config.json + rootfs/) and a scratch dir for state. */
export interface BootEnv {
  bundle: string;
  rootfs: string;
  scratch: string;
}

const BIN: Record<string, string> = { runc: '/usr/sbin/runc', crun: '/usr/bin/crun', bwrap: '/usr/bin/bwrap' };

function need(bin: string, hint: string): string {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: ${hint}`);
  return bin;
}

/** Commands for an OCI CLI runtime: timed `run`, untimed `delete --force`. */
function ociCommands(name: string, bin: string, env: BootEnv): DriverCommands {
  const root = path.join(env.scratch, `${name}-state`);
  return {
    [name]: [bin, '--root', root, 'run', '--bundle', env.bundle, '$ID'],
    [`${name}-delete`]: [bin, '--root', root, 'delete', '--force', '$ID'],
  };
}

class DriverRunner implements BootRunner {
  constructor(readonly name: string, private readonly driver: CliDriver, private readonly deletes: boolean) {}

  async boot(id: string): Promise<number> {
    const r = await this.driver.run(this.name, id);
    if (r.rc !== 0) throw new Error(`${this.name} boot ${id} failed (exit ${r.rc}): ${r.stderr.trim()}`);
    // `run` already removed the container; delete is a no-op safety net, so its exit is ignored.
    if (this.deletes) await this.driver.run(`${this.name}-delete`, id, false);
    return r.ms;
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

/**
 * fork-exec, jiffy-run, runc and bwrap share one driver in the host mount namespace.
 * Returns one runner per requested name.
 */
export async function hostRunners(names: string[], env: BootEnv): Promise<BootRunner[]> {
  const cmds: DriverCommands = {};
  if (names.includes('fork-exec')) cmds['fork-exec'] = ['/bin/true'];
  if (names.includes('jiffy-run')) {
    Object.assign(cmds, ociCommands('jiffy-run', need(launcherBinary(), 'build it with `make -C native`'), env));
  }
  if (names.includes('runc')) Object.assign(cmds, ociCommands('runc', need(BIN.runc, 'apt-get install runc'), env));
  if (names.includes('bwrap')) {
    cmds.bwrap = [need(BIN.bwrap, 'apt-get install bubblewrap'), '--unshare-all', '--bind', env.rootfs, '/',
      '--proc', '/proc', '--dev', '/dev', '/bin/true'];
  }
  const mine = names.filter((n) => n in cmds);
  if (mine.length === 0) return [];
  const driver = await CliDriver.start(cmds, { errFile: path.join(env.scratch, 'host-driver.err') });
  // The driver is shared; only the last runner's close() ends it.
  return mine.map((n, i) => {
    const r = new DriverRunner(n, driver, n === 'jiffy-run' || n === 'runc');
    return i === mine.length - 1 ? r : Object.assign(r, { close: async () => undefined });
  });
}

/**
 * crun refuses this hybrid host (cgroup2 mounted with no controllers), so its driver lives in a
 * private mount namespace where /sys/fs/cgroup/unified is unmounted once, before any timing.
 */
export async function crunRunner(env: BootEnv): Promise<BootRunner> {
  const driver = await CliDriver.start(ociCommands('crun', need(BIN.crun, 'apt-get install crun'), env), {
    wrapper: ['unshare', '-m'],
    prelude: 'umount /sys/fs/cgroup/unified || { echo "cannot umount /sys/fs/cgroup/unified" >&2; exit 1; }',
    errFile: path.join(env.scratch, 'crun-driver.err'),
  });
  return new DriverRunner('crun', driver, true);
}

/** The fork-server, through the TypeScript binding: one boot = boot() + wait(). */
export async function serveRunner(env: BootEnv, config: OciRuntimeSpec): Promise<BootRunner> {
  need(launcherBinary(), 'build it with `make -C native`');
  const { Launcher } = await import('../../src/launcher/index.js');
  const l = await Launcher.start({ stateRoot: path.join(env.scratch, 'serve-state') });
  return {
    name: 'jiffy-serve',
    boot: async (id) => {
      const t0 = process.hrtime.bigint();
      const h = await l.boot({ id, config, bundle: env.bundle, stdin: 'null' });
      h.stdout?.resume();
      h.stderr?.resume();
      const st = await h.wait();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (st.exitCode !== 0) throw new Error(`jiffy-serve boot ${id} failed: ${JSON.stringify(st)}`);
      return ms;
    },
    close: () => l.close(),
  };
}
