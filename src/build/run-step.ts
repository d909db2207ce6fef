import { writeLayerBlob, dirToLayerEntries } from '../archive/tar-writer.js';
import type { ImageStore } from '../images/store.js';
import { runForUpper } from '../containers/run-and-commit.js';
import type { CommitRunFn, RunStepFn } from './builder.js';
import { appendLayerState } from './copy-step.js';

/**
 * How `jiffy build` runs RUN steps: `runStep` boots a container of the step's image through the
 * containers layer (launcher, overlay snapshot) and hands back its upper dir; `commitRun` turns
 * that upper dir into an uncompressed layer (overlay whiteouts become OCI `.wh.` entries, owners
 * kept, mtimes fixed so a rebuild of the same step gives the same diff id).
 */
export function runStepHooks(store: ImageStore): { runStep: RunStepFn; commitRun: CommitRunFn } {
  const runStep: RunStepFn = (o) =>
    runForUpper(store, { image: o.image, cmd: o.command, env: o.env, workdir: o.workdir, user: o.user, log: o.log });
  const commitRun: CommitRunFn = async (state, upperDir, createdBy, created) => {
    const blob = await writeLayerBlob(store.content, dirToLayerEntries(upperDir, { overlay: true, preserveOwner: true }), { gzip: false });
    return appendLayerState({ store, created }, state, blob, createdBy);
  };
  return { runStep, commitRun };
}
