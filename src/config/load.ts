/**
 * Loads the user's release config the relx way: `rel/relx.config` (YAML, optional) is the base,
 * `rel/relx.config.script` (optional JS module) receives it as `CONFIG` and returns the final one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
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

/** The time limit of `relx.config.script` when `NODEREL_SCRIPT_TIMEOUT` is not set, in seconds. */
export const DEFAULT_SCRIPT_TIMEOUT_S = 30;

/** `NODEREL_SCRIPT_TIMEOUT` (seconds, a positive number), else {@link DEFAULT_SCRIPT_TIMEOUT_S}. */
export function scriptTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.NODEREL_SCRIPT_TIMEOUT;
  if (raw === undefined || raw.trim() === '') return DEFAULT_SCRIPT_TIMEOUT_S * 1000;
  const seconds = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (!(seconds > 0)) {
    throw new NoderelError('ESCRIPT', `NODEREL_SCRIPT_TIMEOUT=${JSON.stringify(raw)} is not a number of seconds; set it to e.g. 60, or unset it for ${DEFAULT_SCRIPT_TIMEOUT_S}`);
  }
  return Math.round(seconds * 1000);
}

/**
 * The script's thread: imports the script, calls its default export and posts what happened.
 * `process.exit` in a worker ends only the worker; it is recorded in `state` (synchronously, so
 * it cannot be lost with the thread) to tell it from a promise that never settles.
 */
const SCRIPT_WORKER = `
(async () => {
  // import(), not require: the code is run as CommonJS or as a module depending on the flags.
  const { parentPort, workerData } = await import('node:worker_threads');
  const state = new Int32Array(workerData.state);
  const exit = process.exit;
  process.exit = function (code) {
    Atomics.store(state, 1, Number(code ?? process.exitCode ?? 0) | 0);
    Atomics.store(state, 0, 1);
    return exit.call(process, code);
  };
  const describe = (err) => err instanceof Error
    ? { name: err.name, message: String(err.message) }
    : { name: '', message: String(err) };
  let mod;
  try {
    mod = await import(workerData.url);
  } catch (err) {
    parentPort.postMessage({ kind: 'load-error', error: describe(err) });
    return;
  }
  parentPort.postMessage({ kind: 'loaded' });
  if (typeof mod.default !== 'function') {
    parentPort.postMessage({ kind: 'no-function' });
    return;
  }
  let result;
  try {
    result = await mod.default(workerData.base, { env: process.env, root: workerData.root });
  } catch (err) {
    parentPort.postMessage({ kind: 'threw', error: describe(err) });
    return;
  }
  try {
    parentPort.postMessage({ kind: 'result', result });
  } catch (err) {
    parentPort.postMessage({ kind: 'not-data', error: describe(err) });
  }
})();
`;

type ScriptMessage =
  | { kind: 'loaded' | 'no-function' }
  | { kind: 'load-error' | 'threw' | 'not-data'; error: { name: string; message: string } }
  | { kind: 'result'; result: unknown };

/**
 * Runs `relx.config.script`: default export `(CONFIG, { env, root }) => config`, sync or async.
 * It runs in a worker thread with a time limit ({@link scriptTimeoutMs}), so a script that calls
 * `process.exit`, never settles, loops forever or throws from a timer fails the build with one
 * line naming the script instead of ending (or hanging) noderel itself.
 */
async function runScript(file: string, base: UserConfig, root: string): Promise<UserConfig> {
  const where = displayPath(file);
  const limitMs = scriptTimeoutMs();
  // Node's ESM loader refuses the `.script` extension: load a `.mjs` copy placed beside the
  // script (so its relative imports still resolve) and remove the copy once it is loaded.
  const loadable = /\.m?js$/.test(file) ? file : path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.mjs`);
  const removeCopy = (): void => {
    if (loadable !== file) fs.rmSync(loadable, { force: true });
  };
  const state = new SharedArrayBuffer(8);
  let message: ScriptMessage | undefined;
  let uncaught: unknown;
  let timedOut = false;
  try {
    if (loadable !== file) fs.copyFileSync(file, loadable);
    // A query string defeats the module cache so a long-lived process sees edits.
    const url = `${pathToFileURL(loadable).href}?t=${fs.statSync(file).mtimeMs}`;
    await new Promise<void>((resolve) => {
      const worker = new Worker(SCRIPT_WORKER, { eval: true, workerData: { url, base, root, state } });
      // The timer also keeps this thread's event loop alive while the script runs.
      const timer = setTimeout(() => {
        timedOut = true;
        void worker.terminate();
      }, limitMs);
      worker.on('message', (m: ScriptMessage) => {
        if (m.kind === 'loaded') {
          removeCopy();
          return;
        }
        message = m;
        // Done: whatever the script left running (servers, intervals) is not waited for.
        void worker.terminate();
      });
      worker.on('error', (err) => {
        uncaught ??= err;
      });
      worker.on('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } catch (err) {
    throw new NoderelError('ESCRIPT', `${where}: failed to load: ${oneLine(err)}; fix the script`, { cause: err });
  } finally {
    removeCopy();
  }
  return scriptOutcome({ where, loadable, limitMs, message, uncaught, timedOut, flags: new Int32Array(state) });
}

/** What the script's thread left behind, as the config it returned or the one-line error. */
function scriptOutcome(o: { where: string; loadable: string; limitMs: number; message?: ScriptMessage; uncaught: unknown; timedOut: boolean; flags: Int32Array }): UserConfig {
  const { where, loadable, limitMs, message, uncaught, timedOut, flags } = o;
  const describe = (e: { name: string; message: string }): string => oneLine(e.name ? `${e.name}: ${e.message}` : e.message).split(loadable).join(where);
  if (message?.kind === 'result') {
    const result = message.result;
    if (!isPlainObject(result)) {
      const found = result === null ? 'null' : Array.isArray(result) ? 'an array' : typeof result;
      throw new NoderelError('ESCRIPT', `${where}: returned ${found}, expected the config object; return CONFIG or a modified copy`);
    }
    return result;
  }
  if (message?.kind === 'load-error') throw new NoderelError('ESCRIPT', `${where}: failed to load: ${describe(message.error)}; fix the script`);
  if (message?.kind === 'threw') throw new NoderelError('ESCRIPT', `${where}: threw ${describe(message.error)}; fix the script`);
  if (message?.kind === 'no-function') {
    throw new NoderelError('ESCRIPT', `${where}: has no default export function; write \`export default (CONFIG, { env }) => ({ ...CONFIG })\``);
  }
  if (message?.kind === 'not-data') {
    throw new NoderelError(
      'ESCRIPT',
      `${where}: returned a config that is not plain data (${describe(message.error)}); return only objects, lists, strings, numbers, booleans and null`,
    );
  }
  if (uncaught !== undefined) throw new NoderelError('ESCRIPT', `${where}: threw ${oneLine(uncaught).split(loadable).join(where)}; fix the script`, { cause: uncaught });
  if (Atomics.load(flags, 0) === 1) {
    throw new NoderelError(
      'ESCRIPT',
      `${where}: called process.exit(${Atomics.load(flags, 1)}) instead of returning the config; return CONFIG or a modified copy (throw to fail the build)`,
    );
  }
  if (timedOut) {
    throw new NoderelError(
      'ESCRIPT',
      `${where}: did not finish within ${limitMs / 1000} s; make it return sooner, or raise the limit with NODEREL_SCRIPT_TIMEOUT=<seconds>`,
    );
  }
  throw new NoderelError(
    'ESCRIPT',
    `${where}: never returned the config: its promise was still pending with nothing left to wait for; resolve it with the config (or reject to fail the build)`,
  );
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
