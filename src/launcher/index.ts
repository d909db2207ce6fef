/** The container launcher: OCI spec types, the fork-server binding and one-shot mount helpers. */
export * from './oci-spec.js';
export { Launcher, type LauncherOptions, type RootfsOverlay, type BootSpec, type ContainerHandle, type ContainerStats, type ExitStatus } from './launcher.js';
export { mountOverlay, umount, type OverlayMountOptions } from './oneshot.js';
