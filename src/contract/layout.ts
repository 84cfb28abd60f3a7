/**
 * The release layout: every path of a release directory (ARCHITECTURE.md, "The release
 * directory"), relative to the release root, spelled once. The build plans its files with these
 * names; the runtime (src/node, bundled into the release) finds them with the same ones through
 * {@link releasePath}. Pure string functions, Node built-ins only (this module ships in releases).
 */
import { join } from 'node:path';

export const RELEASES_DIR = 'releases';
/** `"<node_vsn> <rel_vsn>\n"`: the current version. */
export const START_DATA = 'releases/start.data';
/** Random, mode 0400, kept across rebuilds. */
export const COOKIE = 'releases/COOKIE';
/** Run state and logs, unless RELEASE_TMP and RUNNER_LOG_DIR say otherwise. */
export const TMP_DIR = 'tmp';
export const LOG_DIR = 'log';

/** `bin/<name>`: the current version's launcher. */
export const launcher = (name: string): string => `bin/${name}`;
/** `bin/<name>-<vsn>`: the launcher of one version (the same file). */
export const versionedLauncher = (name: string, vsn: string): string => `bin/${name}-${vsn}`;
/** `node-<nodevsn>`: the pinned runtime's directory. */
export const nodeDir = (nodeVsn: string): string => `node-${nodeVsn}`;
export const nodeBinary = (nodeVsn: string): string => `${nodeDir(nodeVsn)}/bin/node`;
/** `lib/noderel-<vsn>`: the runtime bundles (boot.js, ctl.js, worker-main.js). */
export const noderelDir = (noderelVsn: string): string => `lib/noderel-${noderelVsn}`;
/** `lib/<app>-<appvsn>`: an app's files and production node_modules. */
export const appDir = (app: string, appVsn: string): string => `lib/${app}-${appVsn}`;

/** `releases/<vsn>`: the files of one version. */
export const releaseVersionDir = (vsn: string): string => `${RELEASES_DIR}/${vsn}`;
/** The manifest (contract/manifest.ts). */
export const manifestFile = (vsn: string): string => `${releaseVersionDir(vsn)}/release.json`;
/** What the launcher needs from the manifest, sh-sourceable (contract/release-env.ts). */
export const releaseEnvFile = (vsn: string): string => `${releaseVersionDir(vsn)}/release.env`;
export const configYamlFile = (vsn: string): string => `${releaseVersionDir(vsn)}/config.yaml`;
/** vm.args with includes inlined, `${VAR}` kept for launch time. */
export const vmArgsFile = (vsn: string): string => `${releaseVersionDir(vsn)}/vm.args`;
/** The validated sys.config as JSON. */
export const sysConfigFile = (vsn: string): string => `${releaseVersionDir(vsn)}/sys.config`;
export const hookFile = (vsn: string, hook: string): string => `${releaseVersionDir(vsn)}/hooks/${hook}`;

/** `<name>-<vsn>.tar.gz`: the tarball `noderel tar` writes. */
export const tarballName = (name: string, vsn: string): string => `${name}-${vsn}.tar.gz`;
/** Where `upgrade VSN` looks for a version's tarball. */
export const upgradeTarball = (name: string, vsn: string): string => `${RELEASES_DIR}/${tarballName(name, vsn)}`;

/** The absolute path of the release path `rel` (one of the above) under the release `root`. */
export function releasePath(root: string, rel: string): string {
  return join(root, rel);
}
