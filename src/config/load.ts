/**
 * Loads the user's release config the relx way: `rel/relx.config` (YAML, optional) is the base,
 * `rel/relx.config.script` (optional JS module) receives it as `CONFIG` and returns the final one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import { NoderelError } from '../errors.js';
import { displayPath } from '../reporter.js';

export type UserConfig = Record<string, unknown>;

export interface LoadedConfig {
  /** The project root: the directory holding `rel/`. Config paths are relative to it. */
  root: string;
  config: UserConfig;
  /** Which files contributed, for messages. */
  sources: string[];
}

export const CONFIG_FILE = 'rel/relx.config';
export const SCRIPT_FILES = ['rel/relx.config.script', 'rel/relx.config.script.js', 'rel/relx.config.script.mjs'];

/** Parses YAML text keeping positions; a syntax error becomes `file:line:col: message`. */
export function parseYamlFile(file: string, code: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => {
      const pos = lineCounter.linePos(e.pos[0]);
      const first = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
      const what = e.code === 'DUPLICATE_KEY' ? `duplicate key: ${first}; every key may appear once` : `${first}; fix the YAML syntax`;
      return `${displayPath(file)}:${pos.line}:${pos.col}: ${what}`;
    });
    throw new NoderelError(code, problems[0]!, { problems: problems.slice(1) });
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Unresolved or excessive aliases surface only here, not in doc.errors.
    throw new NoderelError(code, `${displayPath(file)}: ${(err as Error).message}; fix the YAML anchors and aliases`);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Runs `relx.config.script`: default export `(CONFIG, { env, root }) => config`, sync or async. */
async function runScript(file: string, base: UserConfig, root: string): Promise<UserConfig> {
  const where = displayPath(file);
  let mod: { default?: unknown };
  // Node's ESM loader refuses the `.script` extension: load a `.mjs` copy placed beside the
  // script (so its relative imports still resolve) and remove the copy at once.
  const loadable = /\.m?js$/.test(file) ? file : path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.mjs`);
  try {
    if (loadable !== file) fs.copyFileSync(file, loadable);
    // A query string defeats the module cache so a long-lived process sees edits.
    mod = (await import(`${pathToFileURL(loadable).href}?t=${fs.statSync(file).mtimeMs}`)) as { default?: unknown };
  } catch (err) {
    throw new NoderelError('ESCRIPT', `${where}: failed to load: ${oneLine(err).split(loadable).join(where)}; fix the script`, { cause: err });
  } finally {
    if (loadable !== file) fs.rmSync(loadable, { force: true });
  }
  const fn = mod.default;
  if (typeof fn !== 'function') {
    throw new NoderelError('ESCRIPT', `${where}: has no default export function; write \`export default (CONFIG, { env }) => ({ ...CONFIG })\``);
  }
  let result: unknown;
  try {
    result = await (fn as (c: UserConfig, ctx: { env: NodeJS.ProcessEnv; root: string }) => unknown)(structuredClone(base), {
      env: process.env,
      root,
    });
  } catch (err) {
    throw new NoderelError('ESCRIPT', `${where}: threw ${oneLine(err)}; fix the script`, { cause: err });
  }
  if (!isPlainObject(result)) {
    const found = result === null ? 'null' : Array.isArray(result) ? 'an array' : typeof result;
    throw new NoderelError('ESCRIPT', `${where}: returned ${found}, expected the config object; return CONFIG or a modified copy`);
  }
  return result;
}

function oneLine(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message.split('\n')[0]}`;
  return String(err).split('\n')[0]!;
}

/** Finds and loads the config of the project at `root`. */
export async function loadConfig(root: string): Promise<LoadedConfig> {
  const abs = path.resolve(root);
  const sources: string[] = [];
  let config: UserConfig = {};
  const base = path.join(abs, CONFIG_FILE);
  if (fs.existsSync(base)) {
    const parsed = parseYamlFile(base, 'ECONFIG');
    if (parsed !== null && parsed !== undefined && !isPlainObject(parsed)) {
      throw new NoderelError('ECONFIG', `${displayPath(base)}: expected a mapping at the top level; see rel/relx.config in the noderel README`);
    }
    config = (parsed ?? {}) as UserConfig;
    sources.push(base);
  }
  const script = SCRIPT_FILES.map((f) => path.join(abs, f)).find((f) => fs.existsSync(f));
  if (script) {
    config = await runScript(script, config, abs);
    sources.push(script);
  }
  if (sources.length === 0) {
    throw new NoderelError('ENOCONFIG', `no ${CONFIG_FILE} or ${SCRIPT_FILES[0]} in ${displayPath(abs)}; run \`noderel init\` to write a starter rel/`);
  }
  return { root: abs, config, sources };
}
