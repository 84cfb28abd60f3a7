import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NoderelError } from '../../src/errors.js';
import { CONFIG_FILE, loadConfig, parseYamlFile, SCRIPT_FILES, type LoadedConfig } from '../../src/config/load.js';
import { repoRoot, tempDir, writeFiles } from '../helpers/project.js';

let project: string;
let cleanup: () => void;
let previousCwd: string;

beforeEach(() => {
  previousCwd = process.cwd();
  ({ dir: project, cleanup } = tempDir('noderel-load-'));
  process.chdir(project); // messages show paths relative to the working directory
});

afterEach(() => {
  process.chdir(previousCwd);
  cleanup();
});

/** The NoderelError `fn` rejects with. */
async function rejection(fn: () => Promise<unknown>): Promise<NoderelError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NoderelError);
    return err as NoderelError;
  }
  throw new Error('expected a NoderelError, nothing was thrown');
}

/** What loadConfig gave in a real Node process: the config, or the error's fields. */
type Outcome =
  | { ok: LoadedConfig; err?: undefined }
  | { ok?: undefined; err: { name: string; code?: string; message: string; problems?: string[] } };

/**
 * Runs `loadConfig(project)` in a plain Node process from the compiled toolchain, with the
 * project as the working directory. relx.config.script is loaded with Node's own ESM loader,
 * which vitest's module runner would stand in for in-process (and hide what users get).
 */
function loadInNode(env: NodeJS.ProcessEnv = {}): Outcome {
  const load = pathToFileURL(path.join(repoRoot, 'dist', 'config', 'load.js')).href;
  const code = `
    const { loadConfig } = await import(${JSON.stringify(load)});
    try {
      console.log(JSON.stringify({ ok: await loadConfig(process.cwd()) }));
    } catch (e) {
      console.log(JSON.stringify({ err: { name: e.name, code: e.code, message: e.message, problems: e.problems } }));
    }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: project, encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Outcome;
}

function loaded(o: Outcome): LoadedConfig {
  if (o.err) throw new Error(`expected a config, got ${o.err.name}: ${o.err.message}`);
  return o.ok;
}

function failed(o: Outcome): { name: string; code?: string; message: string; problems?: string[] } {
  if (!o.err) throw new Error(`expected an error, got ${JSON.stringify(o.ok)}`);
  return o.err;
}

/** Temporary `.mjs` copies of the script left in rel/. */
const leftovers = () => fs.readdirSync(path.join(project, 'rel')).filter((f) => f.startsWith('.relx.config.script'));

const YAML_CONFIG = ['release:', '  name: shop', '  version: 1.0.0', 'apps:', '  - apps/web', 'node_types:', '  web: [web]', ''].join('\n');

describe('loadConfig: rel/relx.config only', () => {
  it('parses the YAML and names it as the only source', async () => {
    writeFiles(project, { 'rel/relx.config': YAML_CONFIG });
    const c = await loadConfig(project);
    expect(c).toEqual({
      root: project,
      config: { release: { name: 'shop', version: '1.0.0' }, apps: ['apps/web'], node_types: { web: ['web'] } },
      sources: [path.join(project, 'rel/relx.config')],
    });
  });

  it('makes a relative root absolute', async () => {
    writeFiles(project, { 'sub/rel/relx.config': 'release: {name: x}\n' });
    const c = await loadConfig('sub');
    expect(c.root).toBe(path.join(project, 'sub'));
    expect(c.sources).toEqual([path.join(project, 'sub/rel/relx.config')]);
  });

  it('reads an empty (comments only) file as an empty config', async () => {
    writeFiles(project, { 'rel/relx.config': '# nothing yet\n' });
    expect((await loadConfig(project)).config).toEqual({});
  });

  it('rejects a top level that is not a mapping', async () => {
    writeFiles(project, { 'rel/relx.config': '- apps/web\n- apps/worker\n' });
    const err = await rejection(() => loadConfig(project));
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toBe('rel/relx.config: expected a mapping at the top level; see rel/relx.config in the noderel README');
  });

  it('reports a YAML syntax error as file:line:col', async () => {
    writeFiles(project, { 'rel/relx.config': 'release:\n  name: shop\n\tversion: 1.0.0\n' });
    const err = await rejection(() => loadConfig(project));
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toBe('rel/relx.config:3:1: Tabs are not allowed as indentation; fix the YAML syntax');
  });

  it('fails with ENOCONFIG when there is neither a config nor a script', async () => {
    fs.mkdirSync(path.join(project, 'rel'));
    const err = await rejection(() => loadConfig(project));
    expect(err.code).toBe('ENOCONFIG');
    expect(err.message).toBe('no rel/relx.config or rel/relx.config.script in .; run `noderel init` to write a starter rel/');
  });

  it('looks for the files the docs name', () => {
    expect(CONFIG_FILE).toBe('rel/relx.config');
    expect(SCRIPT_FILES[0]).toBe('rel/relx.config.script');
  });
});

describe('parseYamlFile', () => {
  it('returns the document as plain data, aliases resolved', () => {
    writeFiles(project, { 'a.yaml': 'base: &b {port: 80}\nweb: *b\nlist: [1, two, null]\n' });
    expect(parseYamlFile(path.join(project, 'a.yaml'), 'EX')).toEqual({ base: { port: 80 }, web: { port: 80 }, list: [1, 'two', null] });
  });

  it('throws with the given code, the first problem as the message and the rest as problems', () => {
    writeFiles(project, { 'a.yaml': 'release:\n  name: shop\n  name: again\napps: [a\n' });
    try {
      parseYamlFile(path.join(project, 'a.yaml'), 'EXYZ');
      expect.unreachable();
    } catch (err) {
      const e = err as NoderelError;
      expect(e).toBeInstanceOf(NoderelError);
      expect(e.code).toBe('EXYZ');
      expect(e.message).toBe('a.yaml:3:3: duplicate key: Map keys must be unique; every key may appear once');
      expect(e.problems).toHaveLength(1);
      expect(e.problems[0]).toMatch(/^a\.yaml:5:1: .+; fix the YAML syntax$/);
    }
  });

  it('shows the file relative to the working directory', () => {
    writeFiles(project, { 'conf/x.yaml': 'a: [\n' });
    try {
      parseYamlFile(path.join(project, 'conf/x.yaml'), 'E');
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/^conf\/x\.yaml:\d+:\d+: /);
    }
  });
});

describe('loadConfig: rel/relx.config.script', () => {
  it('runs a script alone: CONFIG is empty, the script is the only source', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default (CONFIG) => ({ ...CONFIG, release: { name: "s", version: "1" }, seen: CONFIG })\n' });
    const c = loaded(loadInNode());
    expect(c).toEqual({
      root: project,
      config: { release: { name: 's', version: '1' }, seen: {} },
      sources: [path.join(project, 'rel/relx.config.script')],
    });
    expect(leftovers()).toEqual([]);
  });

  it('hands the YAML config to the script as CONFIG, with {env, root}', () => {
    writeFiles(project, {
      'rel/relx.config': YAML_CONFIG,
      'rel/relx.config.script': [
        'export default function (CONFIG, { env, root }) {',
        '  CONFIG.release.version = env.NODEREL_TEST_VSN;',
        '  return { ...CONFIG, root_seen: root, args: arguments.length };',
        '}',
      ].join('\n'),
    });
    const c = loaded(loadInNode({ NODEREL_TEST_VSN: '7.7.7' }));
    expect(c.config).toEqual({
      release: { name: 'shop', version: '7.7.7' },
      apps: ['apps/web'],
      node_types: { web: ['web'] },
      root_seen: project,
      args: 2,
    });
    expect(c.sources).toEqual([path.join(project, 'rel/relx.config'), path.join(project, 'rel/relx.config.script')]);
  });

  it('awaits an async script', () => {
    writeFiles(project, {
      'rel/relx.config': YAML_CONFIG,
      'rel/relx.config.script': 'export default async (CONFIG) => { await new Promise((r) => setImmediate(r)); return { ...CONFIG, late: true }; }\n',
    });
    expect(loaded(loadInNode()).config).toMatchObject({ release: { name: 'shop' }, late: true });
  });

  it('resolves a relative import of a sibling .mjs from the script', () => {
    writeFiles(project, {
      'rel/versions.mjs': 'export const VSN = "4.3.0";\n',
      'rel/relx.config.script': 'import { VSN } from "./versions.mjs";\nexport default (CONFIG) => ({ ...CONFIG, release: { name: "kazoo", version: VSN } });\n',
    });
    expect(loaded(loadInNode()).config).toEqual({ release: { name: 'kazoo', version: '4.3.0' } });
    expect(leftovers()).toEqual([]);
  });

  it('loads rel/relx.config.script.mjs as it is, and prefers rel/relx.config.script', () => {
    writeFiles(project, { 'rel/relx.config.script.mjs': 'export default (C) => ({ ...C, from: "mjs" });\n' });
    expect(loaded(loadInNode())).toMatchObject({ config: { from: 'mjs' }, sources: [path.join(project, 'rel/relx.config.script.mjs')] });
    writeFiles(project, { 'rel/relx.config.script': 'export default (C) => ({ ...C, from: "script" });\n' });
    expect(loaded(loadInNode())).toMatchObject({ config: { from: 'script' }, sources: [path.join(project, 'rel/relx.config.script')] });
  });

  it('removes the temporary copy when the script throws while being called', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default () => { throw new TypeError("no VSN\\nsecond line"); };\n' });
    const err = failed(loadInNode());
    expect(err).toMatchObject({ name: 'NoderelError', code: 'ESCRIPT', message: 'rel/relx.config.script: threw TypeError: no VSN; fix the script' });
    expect(leftovers()).toEqual([]);
  });

  it('removes the temporary copy when the script throws while being loaded', () => {
    writeFiles(project, { 'rel/relx.config.script': 'throw new Error("top level");\nexport default (C) => C;\n' });
    const err = failed(loadInNode());
    expect(err).toMatchObject({ code: 'ESCRIPT', message: 'rel/relx.config.script: failed to load: Error: top level; fix the script' });
    expect(leftovers()).toEqual([]);
  });

  it.each([
    ['null', 'export default () => null;', 'returned null'],
    ['an array', 'export default async () => [1, 2];', 'returned an array'],
    ['a number', 'export default () => 5;', 'returned number'],
    ['nothing', 'export default () => {};', 'returned undefined'],
  ])('rejects a script that returns %s', (_what, text, returned) => {
    writeFiles(project, { 'rel/relx.config.script': `${text}\n` });
    expect(failed(loadInNode())).toMatchObject({
      code: 'ESCRIPT',
      message: `rel/relx.config.script: ${returned}, expected the config object; return CONFIG or a modified copy`,
    });
  });

  it.each([
    ['no default export', 'export const config = {};'],
    ['a default export that is not a function', 'export default { release: {} };'],
  ])('rejects a script with %s', (_what, text) => {
    writeFiles(project, { 'rel/relx.config.script': `${text}\n` });
    expect(failed(loadInNode())).toMatchObject({
      code: 'ESCRIPT',
      message: 'rel/relx.config.script: has no default export function; write `export default (CONFIG, { env }) => ({ ...CONFIG })`',
    });
  });

  it('reports a syntax error under the script name, not the temporary copy', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default (CONFIG => {\n' });
    const err = failed(loadInNode());
    expect(err.code).toBe('ESCRIPT');
    expect(err.message).toMatch(/^rel\/relx\.config\.script: failed to load: SyntaxError: .+; fix the script$/);
    expect(err.message).not.toContain(`.relx.config.script.`);
    expect(leftovers()).toEqual([]);
  });

  it('names the script, not the temporary copy, when one of its imports is missing', () => {
    writeFiles(project, { 'rel/relx.config.script': 'import x from "./nothere.mjs";\nexport default (C) => ({ ...C, x });\n' });
    const err = failed(loadInNode());
    expect(err.code).toBe('ESCRIPT');
    expect(err.message).toContain('imported from rel/relx.config.script');
    expect(err.message).not.toContain('.relx.config.script.');
    expect(leftovers()).toEqual([]);
  });

  // Issue 10, item 19: a script must never end or hang noderel itself.
  it('refuses a script that calls process.exit, naming the script (it used to end noderel with exit 0 and no output)', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default (C) => { process.exit(0); return C; };\n' });
    expect(failed(loadInNode())).toMatchObject({
      code: 'ESCRIPT',
      message: 'rel/relx.config.script: called process.exit(0) instead of returning the config; return CONFIG or a modified copy (throw to fail the build)',
    });
    writeFiles(project, { 'rel/relx.config.script': 'process.exit(3);\nexport default (C) => C;\n' });
    expect(failed(loadInNode()).message).toMatch(/^rel\/relx\.config\.script: called process\.exit\(3\) instead of returning the config;/);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a script whose promise never settles (it used to end noderel with exit 13 and no output)', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default () => new Promise(() => {});\n' });
    expect(failed(loadInNode())).toMatchObject({
      code: 'ESCRIPT',
      message: 'rel/relx.config.script: never returned the config: its promise was still pending with nothing left to wait for; resolve it with the config (or reject to fail the build)',
    });
    expect(leftovers()).toEqual([]);
  });

  it('stops a script at NODEREL_SCRIPT_TIMEOUT, endless loops included', () => {
    for (const body of ['export default () => { for (;;); };', 'export default () => new Promise(() => setInterval(() => {}, 1000));']) {
      writeFiles(project, { 'rel/relx.config.script': `${body}\n` });
      const started = Date.now();
      expect(failed(loadInNode({ NODEREL_SCRIPT_TIMEOUT: '0.5' }))).toMatchObject({
        code: 'ESCRIPT',
        message: 'rel/relx.config.script: did not finish within 0.5 s; make it return sooner, or raise the limit with NODEREL_SCRIPT_TIMEOUT=<seconds>',
      });
      expect(Date.now() - started).toBeLessThan(10_000);
    }
    expect(leftovers()).toEqual([]);
  });

  it('refuses a NODEREL_SCRIPT_TIMEOUT that is not a positive number of seconds', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default (C) => C;\n' });
    for (const bad of ['abc', '0', '-1']) {
      expect(failed(loadInNode({ NODEREL_SCRIPT_TIMEOUT: bad }))).toMatchObject({
        code: 'ESCRIPT',
        message: `NODEREL_SCRIPT_TIMEOUT=${JSON.stringify(bad)} is not a number of seconds; set it to e.g. 60, or unset it for 30`,
      });
    }
  });

  it('names the script when it throws from a timer, and does not wait for what it leaves running', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default () => new Promise(() => setTimeout(() => { throw new RangeError("late"); }, 1));\n' });
    expect(failed(loadInNode())).toMatchObject({ code: 'ESCRIPT', message: 'rel/relx.config.script: threw RangeError: late; fix the script' });
    writeFiles(project, { 'rel/relx.config.script': 'export default (C) => { setInterval(() => {}, 1000); return { ...C, ok: true }; };\n' });
    expect(loaded(loadInNode()).config).toEqual({ ok: true });
  });

  it('refuses a config that is not plain data', () => {
    writeFiles(project, { 'rel/relx.config.script': 'export default (C) => ({ ...C, f() {} });\n' });
    expect(failed(loadInNode()).message).toMatch(/^rel\/relx\.config\.script: returned a config that is not plain data \(DataCloneError: .*\); return only objects, lists/);
  });

  it('does not run the script when the YAML base is invalid', () => {
    writeFiles(project, {
      'rel/relx.config': 'a: [\n',
      'rel/relx.config.script': 'import fs from "node:fs";\nfs.writeFileSync("ran", "");\nexport default (C) => C;\n',
    });
    expect(failed(loadInNode())).toMatchObject({ code: 'ECONFIG' });
    expect(fs.existsSync(path.join(project, 'ran'))).toBe(false);
  });
});
