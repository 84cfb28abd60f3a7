/**
 * Integration helpers: copy a pristine fixture project into a temp dir (as mix release's
 * tests do), run the built `noderel` CLI on it, and read back what it wrote.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = path.join(repoRoot, 'dist', 'cli', 'main.js');
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');

/** Runtimes fetched by tests are cached here once for every test file (and every CI run on the machine). */
export const testCacheDir = process.env.NODEREL_TEST_CACHE ?? path.join(os.tmpdir(), 'noderel-test-cache');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function result(r: SpawnSyncReturns<string>): RunResult {
  if (r.error) throw r.error;
  return { code: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout, stderr: r.stderr };
}

/** Runs `noderel ARGS` in `cwd` with the shared test runtime cache. */
export function noderel(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): RunResult {
  return result(
    spawnSync(process.execPath, [cliPath, ...args], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, NODEREL_CACHE_DIR: testCacheDir, ...env },
      timeout: 300_000,
    }),
  );
}

/** Makes a temp dir that is removed by the returned cleanup function. */
export function tempDir(prefix = 'noderel-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Copies `test/fixtures/<name>` (or any directory) into a fresh temp dir. */
export function copyFixture(name: string): { dir: string; cleanup: () => void } {
  const t = tempDir(`noderel-${path.basename(name)}-`);
  fs.cpSync(path.isAbsolute(name) ? name : path.join(fixturesDir, name), t.dir, { recursive: true });
  return t;
}

/** Writes files given as `{ 'rel/relx.config': '...' }` under `root`. */
export function writeFiles(root: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
}

/** Writes an installed package `node_modules/<name>` under `dir` (a fake install; no network). */
export function installFakePackage(dir: string, name: string, version: string, deps: Record<string, string> = {}, body = 'module.exports = {};\n'): void {
  const pkgDir = path.join(dir, 'node_modules', name);
  writeFiles(pkgDir, {
    'package.json': JSON.stringify({ name, version, main: 'index.js', dependencies: deps }),
    'index.js': body,
  });
}

/** Every file under `dir`, relative, sorted. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  if (fs.existsSync(dir)) walk('');
  return out.sort();
}

/** The minimal fixture with its dependencies "installed": one nested, one hoisted, one dev-only. */
export function minimalProject(): { dir: string; cleanup: () => void } {
  const t = copyFixture('minimal');
  const app = path.join(t.dir, 'apps', 'greeter');
  installFakePackage(app, 'shout', '1.0.0', { caps: '^2' }, "const caps = require('caps');\nmodule.exports = (s) => caps(s) + '!';\n");
  installFakePackage(t.dir, 'caps', '2.1.0', {}, 'module.exports = (s) => s.toUpperCase();\n');
  installFakePackage(app, 'devonly', '1.0.0');
  return t;
}

/**
 * Copies the fixture `name` and builds it with `noderel build` (failing the test if that fails);
 * for a test file's beforeAll. `rel` is `_rel/<name>`, `bin` its launcher.
 */
export function builtFixture(name: string): { dir: string; rel: string; bin: string; cleanup: () => void } {
  const t = copyFixture(name);
  const r = noderel(t.dir, ['build', '-q']);
  if (r.code !== 0) {
    t.cleanup();
    throw new Error(`noderel build of the ${name} fixture failed:\n${r.stderr}`);
  }
  const rel = path.join(t.dir, '_rel', name);
  return { dir: t.dir, rel, bin: path.join(rel, 'bin', name), cleanup: t.cleanup };
}
