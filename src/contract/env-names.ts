/**
 * The operator's per-release variables: `<NAME>_COOKIE`, `<NAME>_CONFIG`, `<NAME>_APP_CONFIG`,
 * NAME being the release name upper-cased with every character other than A-Z and 0-9 turned
 * into `_` (the launcher's `command_help` spells the same rule in sh for its help text).
 */

/** `kazoo` -> `KAZOO`, `my-rel` -> `MY_REL`. */
export function envPrefix(relName: string): string {
  return relName.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}
