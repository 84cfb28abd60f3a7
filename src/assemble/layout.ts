/** Pure path functions for the release layout, relative to the release root. */

export const START_DATA = 'releases/start.data';
export const COOKIE = 'releases/COOKIE';

export const launcher = (name: string): string => `bin/${name}`;
export const versionedLauncher = (name: string, vsn: string): string => `bin/${name}-${vsn}`;
export const nodeDir = (nodeVsn: string): string => `node-${nodeVsn}`;
export const nodeBinary = (nodeVsn: string): string => `${nodeDir(nodeVsn)}/bin/node`;
export const noderelDir = (vsn: string): string => `lib/noderel-${vsn}`;
export const releaseVersionDir = (vsn: string): string => `releases/${vsn}`;
export const tarballName = (name: string, vsn: string): string => `${name}-${vsn}.tar.gz`;
