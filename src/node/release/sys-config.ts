/**
 * The apps' configuration at launch: `releases/<vsn>/sys.config` (JSON, `app -> key ->
 * value`), with `${VAR}` / `${VAR:-default}` substituted in string values when the release was
 * built from a sys.config.src, then overridden per app by `$<NAME>_APP_CONFIG` or
 * `/etc/<name>/app.config` when present (deep merge: objects merge, anything else replaces).
 *
 * A value that was an unquoted scalar in the sys.config.src (release.json `sys_config_typed`)
 * takes the type YAML gives its substituted text, as relx's `replace_os_vars` re-reads the terms:
 * `port: ${PORT}` with PORT=8092 is the number 8092, `debug: ${DEBUG}` with DEBUG=true a boolean,
 * while `port: "${PORT}"` stays the string "8092". Node built-ins only: this file ships in every
 * release, so the YAML 1.2 core schema's scalar rules are written out here ({@link yamlScalar}).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { releasePath, sysConfigFile } from '../../contract/layout.js';
import { envPrefix } from '../../contract/env-names.js';
import { substitute } from '../../contract/placeholders.js';
import { BootError } from '../errors.js';

export { envPrefix } from '../../contract/env-names.js';
/** `${VAR}` / `${VAR:-default}` in a text (contract/placeholders.ts), for a program's args and cwd. */
export { substitute as substituteString } from '../../contract/placeholders.js';

/** `app -> key -> value`. */
export type SysConfig = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

export interface LoadedSysConfig {
  readonly config: SysConfig;
  /** The files that were read, in the order they were applied. */
  readonly sources: readonly string[];
}

export interface SysConfigOptions {
  readonly root: string;
  readonly vsn: string;
  /** The release name: picks `$<NAME>_APP_CONFIG` and `/etc/<name>/app.config`. */
  readonly relName: string;
  /** Substitute `${VAR}` in string values (release.json `sys_config_src`). */
  readonly substitute: boolean;
  /** The values typed after substitution (release.json `sys_config_typed`): app, key, ... */
  readonly typed?: readonly (readonly (string | number)[])[];
  readonly env?: NodeJS.ProcessEnv;
  /** Where `/etc` is; tests point it elsewhere. */
  readonly etcDir?: string;
}

export function loadSysConfig(opts: SysConfigOptions): LoadedSysConfig {
  const env = opts.env ?? process.env;
  const sources: string[] = [];
  const file = releasePath(opts.root, sysConfigFile(opts.vsn));
  let config: SysConfig = {};
  const base = readJsonIfPresent(file, 'ESYSCONFIG');
  if (base !== undefined) {
    sources.push(file);
    config = checkShape(base, file, 'ESYSCONFIG');
    if (opts.substitute) config = substituteInConfig(config, env, file, opts.typed);
  }
  const override = appConfigPath(opts.relName, env, opts.etcDir);
  const extra = readJsonIfPresent(override.file, 'EAPPCONFIG', override.explicit ? override.envVar : undefined);
  if (extra !== undefined) {
    sources.push(override.file);
    config = mergeAppConfig(config, checkShape(extra, override.file, 'EAPPCONFIG'));
  }
  return { config, sources };
}

/** The override file: `$<NAME>_APP_CONFIG` when set (then it must exist), else `/etc/<name>/app.config`. */
export function appConfigPath(
  relName: string,
  env: NodeJS.ProcessEnv = process.env,
  etcDir = '/etc',
): { file: string; explicit: boolean; envVar: string } {
  const envVar = `${envPrefix(relName)}_APP_CONFIG`;
  const fromEnv = env[envVar];
  if (fromEnv) return { file: resolve(fromEnv), explicit: true, envVar };
  return { file: join(etcDir, relName, 'app.config'), explicit: false, envVar };
}

/**
 * Substitutes `${VAR}` and `${VAR:-default}` (default also when VAR is empty, as in sh) in every
 * string value, never in keys. Every unset variable without a default is named in one error.
 * The values at the `typed` paths then take the type YAML gives their text ({@link yamlScalar}).
 */
export function substituteInConfig(
  config: SysConfig,
  env: NodeJS.ProcessEnv,
  file: string,
  typed: readonly (readonly (string | number)[])[] = [],
): SysConfig {
  const unset: string[] = [];
  const typedAt = new Set(typed.map((p) => JSON.stringify(p)));
  const walk = (value: unknown, at: string, keys: (string | number)[]): unknown => {
    if (typeof value === 'string') {
      const text = substitute(value, env, (name) => unset.push(`\${${name}} at ${at}`));
      return typedAt.has(JSON.stringify(keys)) ? yamlScalar(text) : text;
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${at}[${i}]`, [...keys, i]));
    if (isPlainObject(value)) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, at ? `${at}.${k}` : k, [...keys, k])]));
    }
    return value;
  };
  const out = walk(config, '', []) as SysConfig;
  if (unset.length > 0) {
    throw new BootError(
      'ESYSCONFIG',
      `${file}: environment variable not set and no default: ${unset.join(', ')}; set it or write \${VAR:-default}`,
    );
  }
  return out;
}

/**
 * The value YAML 1.2 (core schema) gives an unquoted scalar `text`: null (`null`, `Null`, `NULL`,
 * `~`), a boolean (`true`/`True`/`TRUE`, `false`/...), an integer (`[-+]?[0-9]+`, `0o17`, `0x1F`)
 * or a float (`1.5`, `-.5`, `6.02e23`); anything else is the string as given. Surrounding spaces
 * are ignored for the match, as YAML trims a plain scalar. Differences from a YAML parser, on
 * purpose: an empty text stays "" (a variable set to nothing is not null), and `.inf` / `.nan`
 * stay strings, since sys.config values are JSON.
 */
export function yamlScalar(text: string): string | number | boolean | null {
  const t = text.trim();
  if (t === '') return text;
  if (/^(?:null|Null|NULL|~)$/.test(t)) return null;
  if (/^(?:true|True|TRUE)$/.test(t)) return true;
  if (/^(?:false|False|FALSE)$/.test(t)) return false;
  if (/^[-+]?[0-9]+$/.test(t)) return Number(t);
  if (/^0o[0-7]+$/.test(t)) return parseInt(t.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(t)) return parseInt(t.slice(2), 16);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/.test(t)) return Number(t);
  return text;
}

/** Per app: the override's keys merged deeply into the base section. Inputs are not changed. */
export function mergeAppConfig(base: SysConfig, override: SysConfig): SysConfig {
  const out: Record<string, Record<string, unknown>> = { ...base };
  for (const [app, section] of Object.entries(override)) {
    out[app] = deepMerge(base[app] ?? {}, section) as Record<string, unknown>;
  }
  return out;
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (!isPlainObject(a) || !isPlainObject(b)) return b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = k in a ? deepMerge(a[k], v) : v;
  return out;
}

function readJsonIfPresent(file: string, code: string, requiredBy?: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && requiredBy === undefined) return undefined;
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new BootError(code, `${file}: ${why}${requiredBy ? ` (named by ${requiredBy}); fix the path or unset ${requiredBy}` : ''}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BootError(code, `${file}: not valid JSON: ${(err as Error).message}`);
  }
}

function checkShape(value: unknown, file: string, code: string): SysConfig {
  if (!isPlainObject(value)) throw new BootError(code, `${file}: expected an object of app -> key -> value`);
  const bad = Object.entries(value)
    .filter(([, section]) => !isPlainObject(section))
    .map(([app]) => app);
  if (bad.length > 0) throw new BootError(code, `${file}: ${bad.map((a) => `${a}: expected an object of key -> value`).join('; ')}`);
  return value as SysConfig;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
