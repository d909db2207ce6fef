/**
 * What `jiffy build`'s RUN needs from containers: run one command in a container of an image,
 * then either commit its changes as a new image (runAndCommit) or hand back the upper dir for the
 * builder to commit itself (runForUpper, the shape of the builder's RunStepFn).
 */
import { JiffyError } from '../errors.js';
import type { Image, ImageStore } from '../images/store.js';
import { ContainerManager } from './manager.js';

export interface RunStepOptions {
  image: Image | string;
  cmd: string[];
  env?: string[];
  workdir?: string;
  user?: string;
  /** Output lines of the command (build log). */
  log?: (line: string) => void;
  /** Use this manager (e.g. a worker's, with warm mounts) instead of a fresh one. */
  manager?: ContainerManager;
}

function lineSplitter(log?: (line: string) => void): { push: (c: Buffer) => void; end: () => void; tail: () => string } {
  let rest = '';
  const last: string[] = [];
  const emit = (l: string) => {
    last.push(l);
    if (last.length > 20) last.shift();
    log?.(l);
  };
  return {
    push: (c) => {
      const parts = (rest + c.toString()).split('\n');
      rest = parts.pop()!;
      parts.forEach(emit);
    },
    end: () => rest && emit(rest),
    tail: () => last.join('\n'),
  };
}

/** Run the command to completion; a non-zero exit removes the container and throws failed_precondition. */
async function runToEnd(store: ImageStore, o: RunStepOptions): Promise<{ mgr: ContainerManager; id: string; own: boolean }> {
  const mgr = o.manager ?? new ContainerManager({ store, warm: false });
  const image = typeof o.image === 'string' ? o.image : o.image.id;
  const lines = lineSplitter(o.log);
  // --entrypoint "" semantics: RUN's argv is the whole command line.
  const { id, exit } = await mgr.run({ image, entrypoint: [], cmd: o.cmd, env: o.env, workdir: o.workdir, user: o.user, onOutput: (_s, c) => lines.push(c) });
  const info = await exit;
  lines.end();
  if (info.exitCode !== 0) {
    await mgr.remove(id, { force: true });
    throw new JiffyError('failed_precondition', `the command '${o.cmd.join(' ')}' returned a non-zero code: ${info.exitCode}${info.oomKilled ? ' (killed: out of memory)' : ''}\n${lines.tail()}`, { details: { exitCode: info.exitCode } });
  }
  return { mgr, id, own: !o.manager };
}

/** Run `cmd` in a container of `image` and commit the result as a new image (then remove the container). */
export async function runAndCommit(
  store: ImageStore, o: RunStepOptions & { ref?: string; message?: string; author?: string; changes?: string[] },
): Promise<Image> {
  const { mgr, id, own } = await runToEnd(store, o);
  try {
    return await mgr.commit(id, { ref: o.ref, message: o.message, author: o.author, changes: o.changes });
  } finally {
    await mgr.remove(id, { force: true });
    if (own) await mgr.close();
  }
}

/** Run `cmd` and return the container's overlay upper dir; call `cleanup` when done with it. */
export async function runForUpper(store: ImageStore, o: RunStepOptions): Promise<{ upperDir: string; cleanup: () => Promise<void> }> {
  const { mgr, id, own } = await runToEnd(store, o);
  const snap = await mgr.snapshots.get(id);
  return {
    upperDir: snap.upper!,
    cleanup: async () => {
      await mgr.remove(id, { force: true });
      if (own) await mgr.close();
    },
  };
}
