/**
 * Progress of a long operation (pull, push, load, unpack, build step). Library code reports
 * events; the CLI renders them (src/cli/progress.ts). `id` names the item (a layer digest, a
 * build step); `total` is undefined when unknown.
 */
export interface ProgressEvent {
  id: string;
  action: string; // e.g. "Downloading", "Verifying", "Extracting", "Already exists", "Pushed"
  current?: number;
  total?: number;
  done?: boolean;
}
export type ProgressFn = (ev: ProgressEvent) => void;
export const noProgress: ProgressFn = () => {};
