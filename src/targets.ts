/**
 * Runtime targets (`<os>-<arch>`, npm's `node-<target>` package naming): what the config may pin
 * (config/resolve.ts) and what the runtime fetcher and the addon checks know (release/). Both
 * sides import them from here, so the config never reaches downstream for them.
 */

/** Targets with a `node-<target>` package on the npm registry (not every version has every target). */
export const KNOWN_TARGETS: readonly string[] = [
  'linux-x64', 'linux-arm64', 'linux-armv7l', 'linux-ppc64le', 'linux-s390x',
  'darwin-x64', 'darwin-arm64', 'win-x64', 'win-x86', 'win-arm64',
];

/** Targets a release can pin: the launcher is POSIX sh, so no Windows builds. */
export const RELEASE_TARGETS: readonly string[] = KNOWN_TARGETS.filter((t) => !t.startsWith('win'));

/** This host as a target name: `linux-x64`, `darwin-arm64`, `win-x64` (npm's package naming). */
export function hostTarget(): string {
  const platform = process.platform === 'win32' ? 'win' : process.platform;
  return `${platform}-${process.arch}`;
}
