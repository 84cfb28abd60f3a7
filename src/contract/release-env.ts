/**
 * `releases/<vsn>/release.env`: what the launcher (templates/bin/launcher.sh) needs from the
 * manifest, as sh assignments it sources (`. release.env`, no fork, no JSON parsing in sh). Made
 * by the build from the typed manifest; every value single-quoted, so no value is ever expanded.
 */
import type { ManifestJson } from './manifest.js';

/** `'it'\''s'`: a word sh reads back as exactly `value`. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The variables of release.env, in the order written. */
export function releaseEnvVars(m: ManifestJson): [string, string][] {
  const types = Object.entries(m.node_types);
  return [
    ['NODE_VSN', m.node_version],
    ['NODEREL_VSN', m.noderel_version],
    ['NODE_TYPES', types.map(([name]) => name).join(' ')],
    // node type=process name pairs: each node's process title, what `pgrep -x` matches
    ['PROCESS_NAMES', types.map(([name, t]) => `${name}=${t.process_name}`).join(' ')],
    ['DEFAULT_NODE_TYPE', m.default_node_type],
  ];
}

/** The text of release.env. */
export function renderReleaseEnv(m: ManifestJson): string {
  const lines = releaseEnvVars(m).map(([k, v]) => `${k}=${shQuote(v)}`);
  return `# ${m.name} ${m.version}: made by the build from release.json, for bin/${m.name}; do not edit.\n${lines.join('\n')}\n`;
}
