import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { thrown } from '../helpers/errors.js';
import { NoderelError } from '../../src/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { resolveConfig, type ResolvedConfig } from '../../src/config/resolve.js';
import { loadSysConfig } from '../../src/config/sys-config.js';
import { loadVmArgs } from '../../src/config/vm-args.js';
import { initProject, releaseNameOf, starterConfig, type InitOptions } from '../../src/init/init.js';
import { createSilentReporter } from '../../src/reporter.js';
import { tempDir, writeFiles } from '../helpers/project.js';

let project: string;
let cleanup: () => void;
let previousCwd: string;

beforeEach(() => {
  previousCwd = process.cwd();
  ({ dir: project, cleanup } = tempDir('noderel-init-'));
  process.chdir(project); // messages show paths relative to the working directory
});

afterEach(() => {
  process.chdir(previousCwd);
  cleanup();
});

const pkg = (fields: Record<string, unknown>, files: Record<string, string> = {}) =>
  writeFiles(project, { 'package.json': JSON.stringify(fields), ...files });

function init(opts: Partial<InitOptions> = {}) {
  const reporter = createSilentReporter();
  initProject({ root: project, reporter, ...opts });
  return reporter.lines;
}

/** The written rel/relx.config as data. */
const written = () => YAML.parse(fs.readFileSync(path.join(project, 'rel/relx.config'), 'utf8')) as Record<string, any>;
const entryOf = () => written().apps[0].entry as string;

/** The written rel/ fed back through the real loader and resolver. */
async function resolved(): Promise<ResolvedConfig> {
  return resolveConfig(await loadConfig(project));
}

function failure(fn: () => unknown): NoderelError {
  return thrown(fn, NoderelError);
}

describe('releaseNameOf', () => {
  it.each([
    ['kazoo', 'kazoo'],
    ['@acme/web', 'web'],
    ['@acme/my.app', 'my_app'],
    ['my-app_2', 'my-app_2'],
    ['9lives', 'app_9lives'],
    ['@scope/9lives', 'app_9lives'],
    ['_private', 'app__private'],
    ['a b+c', 'a_b_c'],
  ])('%s -> %s', (name, expected) => {
    expect(releaseNameOf(name)).toBe(expected);
  });
});

describe('starterConfig', () => {
  const base = { name: 'web', version: '1.0.0', entry: 'server.js', runtime: 'system' };

  it('describes one program app in one node type, ready at once by default', () => {
    const text = starterConfig(base);
    expect(text.startsWith('#')).toBe(true);
    expect(YAML.parse(text)).toEqual({
      release: { name: 'web', version: '1.0.0' },
      apps: [{ path: '.', name: 'web', version: '1.0.0', type: 'program', entry: 'server.js', ready: 'at_once' }],
      node_types: { web: { apps: ['web'] } },
      runtime: { version: 'system' },
    });
  });

  it('waits for a port, or for an output pattern (the port wins when both are given)', () => {
    expect(YAML.parse(starterConfig({ ...base, port: 8080 })).apps[0].ready).toEqual({ port: 8080 });
    expect(YAML.parse(starterConfig({ ...base, readyOutput: 'listening on "\\d+": ok' })).apps[0].ready).toEqual({ output: 'listening on "\\d+": ok' });
    expect(YAML.parse(starterConfig({ ...base, port: 1, readyOutput: 'x' })).apps[0].ready).toEqual({ port: 1 });
  });

  it('pins the runtime it is given', () => {
    expect(YAML.parse(starterConfig({ ...base, runtime: '22.23.3' })).runtime).toEqual({ version: '22.23.3' });
  });
});

describe('initProject: the entry file', () => {
  it('takes "main" first', () => {
    pkg({ name: 'web', version: '1.0.0', main: './lib/start.js', bin: 'cli.js' }, { 'lib/start.js': '', 'cli.js': '', 'index.js': '' });
    init();
    expect(entryOf()).toBe('lib/start.js');
  });

  it('takes a "bin" string when there is no "main"', () => {
    pkg({ name: 'web', version: '1.0.0', bin: './bin/web.js' }, { 'bin/web.js': '', 'index.js': '' });
    init();
    expect(entryOf()).toBe('bin/web.js');
  });

  it('takes the first "bin" of an object', () => {
    pkg({ name: 'web', version: '1.0.0', bin: { web: 'bin/web.js', webctl: 'bin/ctl.js' } }, { 'bin/web.js': '', 'bin/ctl.js': '', 'index.js': '' });
    init();
    expect(entryOf()).toBe('bin/web.js');
  });

  it('skips a "main" that does not exist', () => {
    pkg({ name: 'web', version: '1.0.0', main: 'dist/index.js' }, { 'server.js': '' });
    init();
    expect(entryOf()).toBe('server.js');
  });

  it.each([
    [['index.js', 'server.js', 'app.js', 'main.js', 'index.mjs', 'server.mjs'], 'index.js'],
    [['server.js', 'app.js', 'main.js', 'index.mjs', 'server.mjs'], 'server.js'],
    [['app.js', 'main.js', 'index.mjs', 'server.mjs'], 'app.js'],
    [['main.js', 'index.mjs', 'server.mjs'], 'main.js'],
    [['index.mjs', 'server.mjs'], 'index.mjs'],
    [['server.mjs'], 'server.mjs'],
  ])('falls back to conventional names in order: %j -> %s', (present, expected) => {
    pkg({ name: 'web', version: '1.0.0' }, Object.fromEntries(present.map((f) => [f, ''])));
    init();
    expect(entryOf()).toBe(expected);
  });

  it('takes --entry over everything', () => {
    pkg({ name: 'web', version: '1.0.0', main: 'index.js' }, { 'index.js': '', 'src/run.js': '' });
    init({ entry: 'src/run.js' });
    expect(entryOf()).toBe('src/run.js');
  });

  it('fails when no entry can be found', () => {
    pkg({ name: 'web', version: '1.0.0', main: 'missing.js' }, { 'README.md': '' });
    const err = failure(() => init());
    expect(err.code).toBe('EINIT');
    expect(err.message).toBe('cannot tell the program\'s entry file from package.json ("main", "bin"); pass --entry FILE');
    expect(fs.existsSync(path.join(project, 'rel'))).toBe(false);
  });
});

describe('initProject: what it writes', () => {
  it('writes rel/relx.config, rel/vm.args and rel/sys.config and reports each', () => {
    pkg({ name: '@acme/shop.web', version: '2.1.0', main: 'server.js' }, { 'server.js': '' });
    const lines = init();
    expect(written()).toEqual({
      release: { name: 'shop_web', version: '2.1.0' },
      apps: [{ path: '.', name: 'shop_web', version: '2.1.0', type: 'program', entry: 'server.js', ready: 'at_once' }],
      node_types: { shop_web: { apps: ['shop_web'] } },
      runtime: { version: 'system' },
    });
    expect(lines).toEqual([
      '* wrote rel/relx.config',
      '* wrote rel/vm.args',
      '* wrote rel/sys.config',
      'Next: `npx noderel` builds _rel/shop_web/; then _rel/shop_web/bin/shop_web foreground',
    ]);
  });

  it('makes the workspace package that holds --entry the app (a monorepo built from its root)', async () => {
    pkg({ name: 'mono', version: '3.0.0', private: true, workspaces: ['packages/*'] }, {
      'packages/api/package.json': JSON.stringify({ name: '@mono/api', version: '1.4.0', main: 'server.js' }),
      'packages/api/server.js': '',
    });
    init({ entry: 'packages/api/server.js', port: 4100 });
    expect(written().apps).toEqual([{ path: 'packages/api', name: 'api', version: '1.4.0', type: 'program', entry: 'server.js', ready: { port: 4100 } }]);
    expect(written().node_types).toEqual({ mono: { apps: ['api'] } });
    const c = await resolved();
    expect(c.apps[0]).toMatchObject({ name: 'api', dir: path.join(project, 'packages/api'), entry: 'server.js' });
  });

  it("keeps a dependency's bin at the project (it ships in the app's node_modules)", () => {
    pkg({ name: 'static', version: '1.0.0' }, {
      'node_modules/http-server/package.json': JSON.stringify({ name: 'http-server', version: '14.1.1' }),
      'node_modules/http-server/bin/http-server': '',
    });
    init({ entry: 'node_modules/http-server/bin/http-server' });
    expect(written().apps[0]).toMatchObject({ path: '.', name: 'static', entry: 'node_modules/http-server/bin/http-server' });
  });

  it('refuses an --entry that does not exist', () => {
    pkg({ name: 'shop', version: '1.0.0' });
    expect(failure(() => init({ entry: 'nope.js' })).message).toMatch(/^--entry nope\.js: nope\.js does not exist; pass the program's entry file/);
  });

  it('writes a config that loads and resolves', async () => {
    pkg({ name: '@acme/shop', version: '2.1.0', main: 'server.js' }, { 'server.js': '' });
    init({ port: 4000 });
    const c = await resolved();
    expect(c.name).toBe('shop');
    expect(c.version).toBe('2.1.0');
    expect(c.apps).toEqual([
      { name: 'shop', version: '2.1.0', dir: project, type: 'program', entry: 'server.js', ready: { type: 'port', port: 4000, host: '127.0.0.1' }, startTimeoutMs: 60_000, args: [], cwd: '.' },
    ]);
    expect(c.nodeTypes).toEqual([{ name: 'shop', apps: ['shop'], workers: 0, processName: 'shop' }]);
    expect(c.defaultNodeType).toBe('shop');
    expect(c.runtime).toEqual({ version: 'system' });
    expect(c.vmArgs).toBe(path.join(project, 'rel/vm.args'));
    expect(c.sysConfig).toBe(path.join(project, 'rel/sys.config'));
    // The starter vm.args and sys.config are valid too.
    expect(loadSysConfig(c.sysConfig!, { knownApps: ['shop'] })).toEqual({ config: {}, isSrc: false });
    expect(loadVmArgs(c.vmArgs!).env.map((e) => [e.key, e.value])).toEqual([['NODE_ENV', '${NODE_ENV:-production}']]);
  });

  it('writes --ready-output readiness that resolves to an output pattern', async () => {
    pkg({ name: 'web', version: '1.0.0' }, { 'index.js': '' });
    init({ readyOutput: 'listening on port \\d+' });
    expect((await resolved()).apps[0]!.ready).toEqual({ type: 'output', pattern: 'listening on port \\d+' });
  });

  it('pins --runtime', async () => {
    pkg({ name: 'web', version: '1.0.0' }, { 'index.js': '' });
    init({ runtime: '22.23.3' });
    expect((await resolved()).runtime).toEqual({ version: '22.23.3' });
  });

  it('refuses to overwrite rel/relx.config without force', () => {
    pkg({ name: 'web', version: '1.0.0' }, { 'index.js': '', 'rel/relx.config': '# mine\n' });
    const err = failure(() => init());
    expect(err.code).toBe('EINIT');
    expect(err.message).toBe('rel/relx.config already exists; edit it, or pass --force to overwrite');
    expect(fs.readFileSync(path.join(project, 'rel/relx.config'), 'utf8')).toBe('# mine\n');
    expect(fs.existsSync(path.join(project, 'rel/vm.args'))).toBe(false);
  });

  it('overwrites everything with force', () => {
    pkg({ name: 'web', version: '1.0.0' }, { 'index.js': '', 'rel/relx.config': '# mine\n', 'rel/vm.args': '# mine\n', 'rel/sys.config': '# mine\n' });
    const lines = init({ force: true });
    expect(written().release).toEqual({ name: 'web', version: '1.0.0' });
    expect(fs.readFileSync(path.join(project, 'rel/vm.args'), 'utf8')).toContain('-env NODE_ENV');
    expect(fs.readFileSync(path.join(project, 'rel/sys.config'), 'utf8')).not.toContain('# mine');
    expect(lines.filter((l) => l.startsWith('* wrote'))).toHaveLength(3);
  });

  it('keeps an existing vm.args and sys.config when there is no relx.config yet', () => {
    pkg({ name: 'web', version: '1.0.0' }, { 'index.js': '', 'rel/vm.args': '--max-old-space-size=256\n', 'rel/sys.config': 'web: {a: 1}\n' });
    const lines = init();
    expect(fs.readFileSync(path.join(project, 'rel/vm.args'), 'utf8')).toBe('--max-old-space-size=256\n');
    expect(fs.readFileSync(path.join(project, 'rel/sys.config'), 'utf8')).toBe('web: {a: 1}\n');
    expect(lines.filter((l) => l.startsWith('* wrote'))).toEqual(['* wrote rel/relx.config']);
  });

  it('fails without a package.json, or with one that is not JSON', () => {
    const missing = failure(() => init());
    expect(missing.code).toBe('EINIT');
    expect(missing.message).toBe('package.json is missing or not JSON; run noderel init in a Node project (npm init creates one)');
    writeFiles(project, { 'package.json': '{ "name": ' });
    expect(failure(() => init()).message).toBe(missing.message);
    expect(fs.existsSync(path.join(project, 'rel'))).toBe(false);
  });

  it('fails when package.json has no name', () => {
    pkg({ version: '1.0.0' }, { 'index.js': '' });
    const err = failure(() => init());
    expect(err.code).toBe('EINIT');
    expect(err.message).toBe('package.json has no "name"; add one');
  });
});
