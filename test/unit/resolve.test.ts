import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { thrown } from '../helpers/errors.js';
import { NoderelError } from '../../src/errors.js';
import type { UserConfig } from '../../src/config/load.js';
import { configToPlain, resolveConfig, type CliOverrides, type ResolvedConfig } from '../../src/config/resolve.js';
import { isInside } from '../../src/paths.js';
import { RELEASE_TARGETS } from '../../src/targets.js';
import { tempDir, writeFiles } from '../helpers/project.js';

let project: string;
let cleanup: () => void;
let previousCwd: string;

beforeEach(() => {
  previousCwd = process.cwd();
  ({ dir: project, cleanup } = tempDir('noderel-resolve-'));
  process.chdir(project); // messages show paths relative to the working directory
  writeFiles(project, {
    'apps/web/package.json': JSON.stringify({ name: '@acme/web', version: '1.2.3', main: 'src/index.js' }),
    'apps/web/src/index.js': 'export async function start() {}\n',
    'apps/web/src/other.js': '// another entry\n',
    'apps/worker/package.json': JSON.stringify({ name: 'worker', version: '0.4.0' }),
    'apps/worker/index.js': 'export async function start() {}\n',
  });
});

afterEach(() => {
  process.chdir(previousCwd);
  cleanup();
});

const source = () => path.join(project, 'rel', 'relx.config');

function resolve(config: UserConfig, flags: CliOverrides = {}): ResolvedConfig {
  return resolveConfig({ root: project, config, sources: [source()] }, flags);
}

/** A config that resolves without problems; `extra` overrides its keys. */
function base(extra: UserConfig = {}): UserConfig {
  return {
    release: { name: 'shop', version: '1.0.0' },
    apps: ['apps/web', 'apps/worker'],
    node_types: { web: { apps: ['web', 'worker'] } },
    ...extra,
  };
}

/** The NoderelError thrown by `fn`; `all` is the list of every problem it reports. */
function failure(fn: () => unknown): { err: NoderelError; all: string[] } {
  const e = thrown(fn, NoderelError);
  return { err: e, all: e.problems.length > 0 ? [...e.problems] : [e.message] };
}

describe('resolveConfig: apps and defaults', () => {
  it('takes names (scope dropped) and versions from package.json and fills every default', () => {
    const c = resolve(base());
    expect(c.root).toBe(project);
    expect(c.name).toBe('shop');
    expect(c.version).toBe('1.0.0');
    expect(c.apps).toEqual([
      {
        name: 'web',
        version: '1.2.3',
        dir: path.join(project, 'apps/web'),
        type: 'module',
        entry: 'src/index.js',
        ready: { type: 'at_once' },
        startTimeoutMs: 60_000,
        args: [],
        cwd: '.',
      },
      {
        name: 'worker',
        version: '0.4.0',
        dir: path.join(project, 'apps/worker'),
        type: 'module',
        entry: 'index.js',
        ready: { type: 'at_once' },
        startTimeoutMs: 60_000,
        args: [],
        cwd: '.',
      },
    ]);
    expect(c.nodeTypes).toEqual([{ name: 'web', apps: ['web', 'worker'], workers: 0, processName: 'web' }]);
    expect(c.defaultNodeType).toBe('web');
    expect(c.runtime).toEqual({ version: 'system' });
    expect(c.vmArgs).toBeUndefined();
    expect(c.sysConfig).toBeUndefined();
    expect(c.outputDir).toBe(path.join(project, '_rel'));
    expect(c.overlays).toEqual([]);
    expect(c.hooks).toEqual({});
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('lets an app object override name, version, type, entry, readiness and start timeout', () => {
    const c = resolve(
      base({
        apps: [
          { path: 'apps/web', name: 'shop_web', version: '9.9.9', type: 'program', entry: 'src/other.js', ready: { port: 8080 }, start_timeout: 5000 },
          'apps/worker',
        ],
        node_types: { web: ['shop_web', 'worker'] },
      }),
    );
    expect(c.apps[0]).toEqual({
      name: 'shop_web',
      version: '9.9.9',
      dir: path.join(project, 'apps/web'),
      type: 'program',
      entry: 'src/other.js',
      ready: { type: 'port', port: 8080, host: '127.0.0.1' },
      startTimeoutMs: 5000,
      args: [],
      cwd: '.',
    });
  });

  it("keeps a program's args (as strings) and cwd for launch time", () => {
    const c = resolve(base({ apps: [{ path: 'apps/web', type: 'program', args: ['public', '-p', 8080, '${PORT:-1}'], cwd: '${DATA_DIR:-data}' }, 'apps/worker'] }));
    expect(c.apps[0]).toMatchObject({ args: ['public', '-p', '8080', '${PORT:-1}'], cwd: '${DATA_DIR:-data}' });
    expect(configToPlain(c).apps![0]).toMatchObject({ args: ['public', '-p', '8080', '${PORT:-1}'], cwd: '${DATA_DIR:-data}' });
  });

  it('accepts an app at the project root (path ".")', () => {
    writeFiles(project, { 'package.json': JSON.stringify({ name: 'rootapp', version: '2.0.0', main: 'server.js' }), 'server.js': '' });
    const c = resolve(base({ apps: ['.'], node_types: { rootapp: ['rootapp'] } }));
    expect(c.apps[0]).toMatchObject({ name: 'rootapp', version: '2.0.0', dir: project, entry: 'server.js' });
  });

  it('makes the first node type the default, or the one named by default_node_type', () => {
    const types = { a: ['web'], b: ['worker'] };
    expect(resolve(base({ node_types: types })).defaultNodeType).toBe('a');
    expect(resolve(base({ node_types: types, default_node_type: 'b' })).defaultNodeType).toBe('b');
  });

  it('picks up rel/vm.args and rel/sys.config when present', () => {
    writeFiles(project, { 'rel/vm.args': '', 'rel/sys.config': '{}\n' });
    const c = resolve(base());
    expect(c.vmArgs).toBe(path.join(project, 'rel/vm.args'));
    expect(c.sysConfig).toBe(path.join(project, 'rel/sys.config'));
  });

  it('falls back to rel/sys.config.src when there is no rel/sys.config', () => {
    writeFiles(project, { 'rel/sys.config.src': 'web: {port: "${PORT}"}\n' });
    expect(resolve(base()).sysConfig).toBe(path.join(project, 'rel/sys.config.src'));
  });

  it('turns the default files off with false or null, and takes explicit paths', () => {
    writeFiles(project, { 'rel/vm.args': '', 'rel/sys.config': '{}\n', 'conf/prod.args': '', 'conf/prod.config': '{}\n' });
    const off = resolve(base({ vm_args: false, sys_config: null }));
    expect(off.vmArgs).toBeUndefined();
    expect(off.sysConfig).toBeUndefined();
    const explicit = resolve(base({ vm_args: 'conf/prod.args', sys_config: 'conf/prod.config' }));
    expect(explicit.vmArgs).toBe(path.join(project, 'conf/prod.args'));
    expect(explicit.sysConfig).toBe(path.join(project, 'conf/prod.config'));
  });

  it('takes output_dir relative to the project', () => {
    expect(resolve(base({ output_dir: 'build/out' })).outputDir).toBe(path.join(project, 'build/out'));
  });
});

describe('resolveConfig: node_types shapes', () => {
  const expected = [
    { name: 'front', apps: ['web'], workers: 2, processName: 'shop-front' },
    { name: 'back', apps: ['worker'], workers: 0, processName: 'back' },
  ];

  it('reads the mapping form', () => {
    const c = resolve(base({ node_types: { front: { apps: ['web'], workers: 2, process_name: 'shop-front' }, back: { apps: ['worker'] } } }));
    expect(c.nodeTypes).toEqual(expected);
  });

  it('reads the list-of-objects form', () => {
    const c = resolve(
      base({
        node_types: [
          { name: 'front', apps: ['web'], workers: 2, process_name: 'shop-front' },
          { name: 'back', apps: ['worker'] },
        ],
      }),
    );
    expect(c.nodeTypes).toEqual(expected);
    expect(c.defaultNodeType).toBe('front');
  });

  it('reads the shorthand form (node type -> list of apps)', () => {
    const c = resolve(base({ node_types: { front: ['web'], back: ['worker', 'web'] } }));
    expect(c.nodeTypes).toEqual([
      { name: 'front', apps: ['web'], workers: 0, processName: 'front' },
      { name: 'back', apps: ['worker', 'web'], workers: 0, processName: 'back' },
    ]);
  });
});

describe('resolveConfig: runtime pin', () => {
  it('takes an exact version as a string, strips a leading v, and takes {version, target}', () => {
    expect(resolve(base({ runtime: '22.23.3' })).runtime).toEqual({ version: '22.23.3' });
    expect(resolve(base({ runtime: 'v20.1.0' })).runtime).toEqual({ version: '20.1.0' });
    expect(resolve(base({ runtime: 'system' })).runtime).toEqual({ version: 'system' });
    expect(resolve(base({ runtime: { version: '22.1.0', target: 'linux-arm64' } })).runtime).toEqual({ version: '22.1.0', target: 'linux-arm64' });
  });

  it('offers no Windows targets (the launcher is POSIX sh)', () => {
    expect(RELEASE_TARGETS).toContain('linux-x64');
    expect(RELEASE_TARGETS.some((t) => t.startsWith('win'))).toBe(false);
  });
});

describe('resolveConfig: CLI overrides win over the config', () => {
  it('--rel-version replaces release.version', () => {
    expect(resolve(base(), { relVersion: '2.0.0-rc.1' }).version).toBe('2.0.0-rc.1');
  });

  it('--rel-version fills a missing release.version', () => {
    expect(resolve(base({ release: { name: 'shop' } }), { relVersion: '3.0.0' }).version).toBe('3.0.0');
  });

  it('--runtime and --target replace the pin', () => {
    const c = resolve(base({ runtime: { version: '20.0.0', target: 'linux-x64' } }), { runtime: '22.5.1', target: 'darwin-arm64' });
    expect(c.runtime).toEqual({ version: '22.5.1', target: 'darwin-arm64' });
    expect(resolve(base({ runtime: '20.0.0' }), { runtime: 'system' }).runtime).toEqual({ version: 'system' });
  });

  it('--output replaces output_dir (relative to the project)', () => {
    expect(resolve(base({ output_dir: 'build' }), { outputDir: 'dist-rel' }).outputDir).toBe(path.join(project, 'dist-rel'));
  });

  it('--force allows an output directory outside the project', () => {
    const outside = path.join(path.dirname(project), `${path.basename(project)}-out`);
    expect(resolve(base(), { outputDir: outside, force: true }).outputDir).toBe(outside);
    const { all } = failure(() => resolve(base(), { outputDir: outside }));
    expect(all).toEqual([`output_dir: ${outside} is outside the project (${project}); pass --force to build there`]);
  });

  it('--force still refuses an output directory that contains the project', () => {
    const parent = path.dirname(project);
    const { all } = failure(() => resolve(base(), { outputDir: parent, force: true }));
    expect(all).toEqual([`output_dir: ${parent} would contain the project itself; choose a subdirectory such as _rel`]);
  });
});

describe('resolveConfig: one message per problem, with its key path', () => {
  const cases: [string, () => UserConfig, string][] = [
    ['an unknown top-level key', () => base({ relase: {} }), 'relase: unknown key; known: release, apps, node_types, default_node_type, runtime, vm_args, sys_config, output_dir, overlays, hooks'],
    ['a bad release name', () => base({ release: { name: '1shop', version: '1.0.0' } }), 'release.name: expected a name of letters, digits, _ and - (found "1shop")'],
    ['an empty release version', () => base({ release: { name: 'shop', version: '' } }), 'release.version: must not be empty; set e.g. version: 1.0.0 (or pass --rel-version)'],
    ['a bad release version', () => base({ release: { name: 'shop', version: '1.0 beta' } }), 'release.version: "1.0 beta" is not a valid version; use letters, digits and . + _ -'],
    ['an app entry that is not a path', () => base({ apps: [42, 'apps/worker'], node_types: { w: ['worker'] } }), 'apps[0]: expected a path or {path: ...}, found 42'],
    ['an app directory without package.json', () => base({ apps: ['apps/web', 'apps/worker', 'apps/nope'] }), "apps[2].path: apps/nope has no readable package.json; point it at the app's directory"],
    ['a bad app name', () => base({ apps: [{ path: 'apps/web', name: 'web app' }, 'apps/worker'], node_types: { w: ['worker'] } }), 'apps[0].name: invalid app name "web app"; use letters, digits, _ and -'],
    ['a bad app version', () => base({ apps: [{ path: 'apps/web', version: '' }, 'apps/worker'] }), 'apps[0].version: app web has no valid version (found ""); set "version" in apps/web/package.json'],
    ['a bad app type', () => base({ apps: [{ path: 'apps/web', type: 'daemon' }, 'apps/worker'] }), 'apps[0].type: expected module or program, found "daemon"'],
    ['a missing entry file', () => base({ apps: [{ path: 'apps/web', entry: 'src/missing.js' }, 'apps/worker'] }), 'apps[0].entry: apps/web/src/missing.js does not exist; set entry (or "main" in package.json)'],
    ['a bad start timeout', () => base({ apps: [{ path: 'apps/web', start_timeout: 0 }, 'apps/worker'] }), 'apps[0].start_timeout: expected milliseconds > 0, found 0'],
    ['program args that are not a list', () => base({ apps: [{ path: 'apps/web', type: 'program', args: '-p 80' }, 'apps/worker'] }), 'apps[0].args: expected a list of arguments, e.g. args: [public, -p, "${PORT:-8080}"], found "-p 80"'],
    ['an empty program cwd', () => base({ apps: [{ path: 'apps/web', type: 'program', cwd: '' }, 'apps/worker'] }), "apps[0].cwd: expected a directory (relative to the app's directory in the release, or absolute), found \"\""],
    ['cwd on a module app', () => base({ apps: [{ path: 'apps/web', cwd: 'public' }, 'apps/worker'] }), 'apps[0].cwd: only a program app takes cwd (a module app is started by its start(ctx)); set type: program or remove cwd'],
    ['a duplicate app', () => base({ apps: ['apps/web', 'apps/worker', 'apps/web'] }), 'apps[2].name: duplicate app "web"; every app may be listed once'],
    ['no node types', () => base({ node_types: undefined }), 'node_types: expected at least one node type, e.g. node_types: {web: {apps: [web, worker]}}'],
    ['a bad node type name', () => base({ node_types: { 'web node': ['web'] } }), 'node_types.web node: invalid node type name "web node"; use letters, digits, _ and -'],
    ['a duplicate node type (list form)', () => base({ node_types: [{ name: 'web', apps: ['web'] }, { name: 'web', apps: ['worker'] }] }), 'node_types[1]: duplicate node type "web"; each node type may be declared once'],
    ['a node type without apps', () => base({ node_types: { web: { workers: 1 } } }), 'node_types.web.apps: expected a non-empty list of apps; known: web, worker'],
    ['an unknown app in a node type', () => base({ node_types: { web: ['web', 'crossbar2'] } }), 'node_types.web.apps[1]: unknown app "crossbar2"; known: web, worker'],
    ['bad workers', () => base({ node_types: { web: { apps: ['web'], workers: 1.5 } } }), 'node_types.web.workers: expected an integer 0-256, found 1.5'],
    ['too many workers', () => base({ node_types: { web: { apps: ['web'], workers: 257 } } }), 'node_types.web.workers: expected an integer 0-256, found 257'],
    ['a bad process name', () => base({ node_types: { web: { apps: ['web'], process_name: 'my web' } } }), 'node_types.web.process_name: invalid process name "my web"; use letters, digits, _ . @ and -'],
    ['an unknown default node type', () => base({ default_node_type: 'ecallmgr' }), 'default_node_type: unknown node type "ecallmgr"; known: web'],
    ['a runtime of the wrong shape', () => base({ runtime: ['22.1.0'] }), 'runtime: expected "system", a version or {version, target}, found a list'],
    ['an inexact runtime version', () => base({ runtime: '22' }), 'runtime.version: expected "system" or an exact version like 22.23.3, found "22"'],
    ['an unknown target', () => base({ runtime: { version: '22.1.0', target: 'win-x64' } }), `runtime.target: unknown target "win-x64"; known: ${RELEASE_TARGETS.join(', ')}`],
    ['a target on the system runtime', () => base({ runtime: { version: 'system', target: 'linux-x64' } }), 'runtime.target: a target needs an exact runtime version (system copies the running Node)'],
    ['a vm_args that is not a path', () => base({ vm_args: 3 }), 'vm_args: expected a file path, found 3'],
    ['a missing vm_args file', () => base({ vm_args: 'rel/prod.args' }), 'vm_args: rel/prod.args does not exist'],
    ['a missing sys_config file', () => base({ sys_config: 'rel/prod.config' }), 'sys_config: rel/prod.config does not exist'],
    ['output_dir equal to the project', () => base({ output_dir: '.' }), 'output_dir: . would contain the project itself; choose a subdirectory such as _rel'],
  ];

  it.each(cases)('%s', (_what, config, message) => {
    const { err, all } = failure(() => resolve(config()));
    expect(err.code).toBe('ECONFIG');
    expect(all).toEqual([message]);
    // A single problem is the message itself, with no "N problems" header.
    expect(err.message).toBe(message);
    expect(err.problems).toEqual([]);
  });

  it('rejects apps that are not a non-empty list', () => {
    for (const [apps, found] of [['apps/web', '"apps/web"'], [[], 'a list'], [undefined, 'nothing']] as const) {
      const { all } = failure(() => resolve(base({ apps, node_types: { web: { apps: [], workers: 0 } } })));
      expect(all[0]).toBe(`apps: expected a non-empty list of app paths, found ${found}; e.g. apps: [apps/myapp]`);
    }
  });

  it('reports every problem in one error, in config order', () => {
    const { err } = failure(() =>
      resolve({
        release: { name: 'shop', version: '' },
        apps: ['apps/web', 'apps/missing'],
        node_types: { web: ['web', 'ghost'] },
        runtime: 'latest',
        colour: 'blue',
      }),
    );
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toBe('invalid release config (rel/relx.config): 5 problems');
    expect(err.problems).toEqual([
      'colour: unknown key; known: release, apps, node_types, default_node_type, runtime, vm_args, sys_config, output_dir, overlays, hooks',
      'release.version: must not be empty; set e.g. version: 1.0.0 (or pass --rel-version)',
      "apps[1].path: apps/missing has no readable package.json; point it at the app's directory",
      'node_types.web.apps[1]: unknown app "ghost"; known: web',
      'runtime.version: expected "system" or an exact version like 22.23.3, found "latest"',
    ]);
    expect(err.format().split('\n')).toHaveLength(6);
  });

  it('names every source file in the header', () => {
    const script = path.join(project, 'rel', 'relx.config.script');
    try {
      resolveConfig({ root: project, config: { release: {} }, sources: [source(), script] });
      expect.unreachable();
    } catch (err) {
      expect((err as NoderelError).message).toMatch(/^invalid release config \(rel\/relx\.config \+ rel\/relx\.config\.script\): \d+ problems$/);
    }
  });

  it('reports a missing release section and everything that follows from it', () => {
    const { all } = failure(() => resolve(base({ release: undefined })));
    expect(all).toEqual([
      'release: expected {name, version}, found nothing',
      'release.name: expected a name of letters, digits, _ and - (found nothing)',
      'release.version: must not be empty; set e.g. version: 1.0.0 (or pass --rel-version)',
    ]);
  });
});

describe('resolveConfig: readiness', () => {
  const readyOf = (ready: unknown) => resolve(base({ apps: [{ path: 'apps/web', type: 'program', ready }, 'apps/worker'] })).apps[0]!.ready;

  it('accepts at_once, {port[, host]} and {output}', () => {
    expect(readyOf(undefined)).toEqual({ type: 'at_once' });
    expect(readyOf('at_once')).toEqual({ type: 'at_once' });
    expect(readyOf({ port: 3000 })).toEqual({ type: 'port', port: 3000, host: '127.0.0.1' });
    expect(readyOf({ port: '3000', host: '::1' })).toEqual({ type: 'port', port: 3000, host: '::1' });
    expect(readyOf({ output: 'listening on \\d+' })).toEqual({ type: 'output', pattern: 'listening on \\d+' });
  });

  it.each([
    [{ port: 0 }, 'apps[0].ready.port: expected a TCP port 1-65535, found 0'],
    [{ port: 70000 }, 'apps[0].ready.port: expected a TCP port 1-65535, found 70000'],
    [{ port: 'http' }, 'apps[0].ready.port: expected a TCP port 1-65535, found "http"'],
    [{ output: 'listening (' }, 'apps[0].ready.output: invalid pattern: Invalid regular expression: /listening (/: Unterminated group'],
    ['soon', 'apps[0].ready: expected at_once, {port: N} or {output: "pattern"}, found "soon"'],
    [{ log: 'x' }, 'apps[0].ready: expected at_once, {port: N} or {output: "pattern"}, found a mapping'],
  ])('rejects %j', (ready, message) => {
    const { all } = failure(() => readyOf(ready));
    expect(all).toEqual([message]);
  });
});

describe('resolveConfig: overlays', () => {
  beforeEach(() => {
    writeFiles(project, { 'rel/overlay/motd.txt': 'welcome to {{release_name}}\n', 'rel/overlay/etc/a.conf': 'a\n' });
  });

  it('resolves mkdir, copy and template overlays; "to" defaults to "from"', () => {
    const c = resolve(
      base({
        overlays: [
          { mkdir: 'log/extra' },
          { copy: { from: 'rel/overlay/etc', to: 'etc' } },
          { template: { from: 'rel/overlay/motd.txt', to: 'etc/motd' } },
          { copy: { from: 'rel/overlay/motd.txt' } },
        ],
      }),
    );
    expect(c.overlays).toEqual([
      { op: 'mkdir', to: 'log/extra' },
      { op: 'copy', from: path.join(project, 'rel/overlay/etc'), to: 'etc' },
      { op: 'template', from: path.join(project, 'rel/overlay/motd.txt'), to: 'etc/motd' },
      { op: 'copy', from: path.join(project, 'rel/overlay/motd.txt'), to: 'rel/overlay/motd.txt' },
    ]);
  });

  it.each([
    [{ mkdir: '../outside' }, 'overlays[0]: destination "../outside" must be a relative path inside the release'],
    [{ mkdir: 'a/../../b' }, 'overlays[0]: destination "a/../../b" must be a relative path inside the release'],
    [{ mkdir: '/etc/shop' }, 'overlays[0]: destination "/etc/shop" must be a relative path inside the release'],
    [{ mkdir: '' }, 'overlays[0]: destination "" must be a relative path inside the release'],
    [{ copy: { from: 'rel/overlay/motd.txt', to: '../../motd' } }, 'overlays[0]: destination "../../motd" must be a relative path inside the release'],
    [{ template: { from: 'rel/overlay/motd.txt', to: '/tmp/motd' } }, 'overlays[0]: destination "/tmp/motd" must be a relative path inside the release'],
    [{ copy: { from: '../shared/motd.txt' } }, '__TWO__'],
    [{ copy: { from: 'rel/overlay/none.txt', to: 'etc/none' } }, 'overlays[0].copy.from: rel/overlay/none.txt does not exist'],
    [{ copy: 'rel/overlay/motd.txt' }, 'overlays[0].copy: expected {from, to}'],
    [{ template: { to: 'etc/motd' } }, 'overlays[0].template: expected {from, to}'],
    [{ link: { from: 'a', to: 'b' } }, 'overlays[0]: unknown overlay link; known: mkdir, copy, template'],
    ['etc', 'overlays[0]: expected {mkdir: dir} or {copy|template: {from, to}}, found "etc"'],
  ])('rejects %j', (overlay, message) => {
    const { all } = failure(() => resolve(base({ overlays: [overlay] })));
    if (message === '__TWO__') {
      // from outside the project, and no "to": the default destination escapes the release too.
      expect(all).toEqual([
        `overlays[0].copy.from: ${path.join(path.dirname(project), 'shared/motd.txt')} does not exist`,
        'overlays[0]: destination "../shared/motd.txt" must be a relative path inside the release',
      ]);
    } else {
      expect(all).toEqual([message]);
    }
  });

  it('writes each destination one way: no trailing slash, no "." or empty segments', () => {
    const c = resolve(base({ overlays: [{ mkdir: 'log/' }, { mkdir: './etc//x/' }, { copy: { from: 'rel/overlay/etc', to: 'etc/raw/' } }] }));
    expect(c.overlays.map((o) => o.to)).toEqual(['log', 'etc/x', 'etc/raw']);
  });

  // Issue 10 item 17: bin/, lib/, releases/, tmp/ and log/ hold other versions, the cookie, run
  // state and logs; an overlay there may only add what the build owns.
  it('accepts mkdir in tmp/ and log/, files in bin/, in this release\'s app directories and in releases/<vsn>/', () => {
    const c = resolve(
      base({
        overlays: [
          { mkdir: 'log' },
          { mkdir: 'tmp' },
          { mkdir: 'log/sasl' },
          { mkdir: 'lib' },
          { mkdir: 'releases' },
          { copy: { from: 'rel/overlay/etc', to: 'bin' } },
          { copy: { from: 'rel/overlay/motd.txt', to: 'bin/motd' } },
          { template: { from: 'rel/overlay/motd.txt', to: 'lib/web-1.2.3/priv/motd' } },
          { template: { from: 'rel/overlay/motd.txt', to: 'releases/1.0.0/motd' } },
        ],
      }),
    );
    expect(c.overlays).toHaveLength(9);
  });

  it.each([
    [{ copy: { from: 'rel/overlay/motd.txt', to: 'log/motd' } }, "overlays[0]: copy to log/motd: log/ holds the nodes' logs and no build writes there; an overlay may only mkdir in log/"],
    [{ template: { from: 'rel/overlay/etc', to: 'tmp' } }, "overlays[0]: template to tmp: tmp/ holds the nodes' run state (pid files, control sockets) and no build writes there; an overlay may only mkdir in tmp/"],
    [{ copy: { from: 'rel/overlay/motd.txt', to: 'bin' } }, 'overlays[0]: copy to bin: a file would replace the directory bin/; name a path inside it'],
    [{ copy: { from: 'rel/overlay/motd.txt', to: 'lib/web-1.0.0/motd' } }, 'overlays[0]: lib/web-1.0.0/motd is not inside an app of this release (lib/web-1.2.3, lib/worker-0.4.0); lib/ holds the apps of every installed version'],
    [{ mkdir: 'lib/extra' }, 'overlays[0]: lib/extra is not inside an app of this release (lib/web-1.2.3, lib/worker-0.4.0); lib/ holds the apps of every installed version'],
    [{ copy: { from: 'rel/overlay/motd.txt', to: 'releases/COOKIE' } }, 'overlays[0]: releases/COOKIE is not inside releases/1.0.0/; releases/ holds the installed versions and the cookie'],
    [{ mkdir: 'releases/0.9.0/x' }, 'overlays[0]: releases/0.9.0/x is not inside releases/1.0.0/; releases/ holds the installed versions and the cookie'],
    [{ mkdir: '.' }, 'overlays[0]: destination "." must be a relative path inside the release'],
    [{ mkdir: 'a/..' }, 'overlays[0]: destination "a/.." must be a relative path inside the release'],
  ])('refuses %j', (overlay, message) => {
    expect(failure(() => resolve(base({ overlays: [overlay] }))).all).toEqual([message]);
  });

  it('rejects overlays that are not a list', () => {
    expect(failure(() => resolve(base({ overlays: { mkdir: 'x' } }))).all).toEqual(['overlays: expected a list, found a mapping']);
  });

  it('keeps the valid overlays and reports the bad ones by index', () => {
    const { all } = failure(() => resolve(base({ overlays: [{ mkdir: 'ok' }, { mkdir: '..' }, { mkdir: 'fine' }, { mkdir: '/abs' }] })));
    expect(all).toEqual([
      'overlays[1]: destination ".." must be a relative path inside the release',
      'overlays[3]: destination "/abs" must be a relative path inside the release',
    ]);
  });
});

describe('resolveConfig: hooks', () => {
  it('resolves known hooks (relx\'s status hook too) to absolute script paths and skips false ones', () => {
    writeFiles(project, { 'rel/hooks/pre_start.sh': '#!/bin/sh\n', 'rel/hooks/post_stop.sh': '#!/bin/sh\n', 'rel/hooks/status.sh': '#!/bin/sh\n' });
    const c = resolve(base({ hooks: { pre_start: 'rel/hooks/pre_start.sh', post_stop: 'rel/hooks/post_stop.sh', pre_stop: false, status: 'rel/hooks/status.sh' } }));
    expect(c.hooks).toEqual({
      pre_start: path.join(project, 'rel/hooks/pre_start.sh'),
      post_stop: path.join(project, 'rel/hooks/post_stop.sh'),
      status: path.join(project, 'rel/hooks/status.sh'),
    });
  });

  it('reports unknown hooks, missing scripts and bad values', () => {
    const { all } = failure(() => resolve(base({ hooks: { pre_boot: 'x.sh', post_start: 'rel/hooks/none.sh', pre_stop: 7 } })));
    expect(all).toEqual([
      'hooks.pre_boot: unknown hook; known: pre_start, post_start, pre_stop, post_stop, status',
      'hooks.post_start: rel/hooks/none.sh does not exist',
      'hooks.pre_stop: expected a file path, found 7',
    ]);
  });

  it('rejects hooks that are not a mapping', () => {
    expect(failure(() => resolve(base({ hooks: ['pre_start.sh'] }))).all).toEqual([
      'hooks: expected a mapping of pre_start, post_start, pre_stop, post_stop, status to script paths, found a list',
    ]);
  });
});

describe('configToPlain', () => {
  function full(): ResolvedConfig {
    writeFiles(project, {
      'rel/vm.args': '',
      'rel/sys.config': '{}\n',
      'rel/overlay/motd.txt': 'hi\n',
      'rel/hooks/pre_start.sh': '#!/bin/sh\n',
    });
    return resolve(
      base({
        apps: [
          { path: 'apps/web', type: 'program', ready: { port: 8080, host: '0.0.0.0' }, start_timeout: 3000 },
          { path: 'apps/worker', type: 'program', ready: { output: 'ready' } },
        ],
        node_types: { front: { apps: ['web'], workers: 2, process_name: 'shop-front' }, back: ['worker'] },
        default_node_type: 'back',
        runtime: { version: '22.1.0', target: 'linux-x64' },
        output_dir: 'out/rel',
        overlays: [{ mkdir: 'log' }, { template: { from: 'rel/overlay/motd.txt', to: 'etc/motd' } }],
        hooks: { pre_start: 'rel/hooks/pre_start.sh' },
      }),
    );
  }

  it('prints plain data with paths relative to the project', () => {
    expect(configToPlain(full())).toEqual({
      release: { name: 'shop', version: '1.0.0' },
      apps: [
        { name: 'web', version: '1.2.3', path: 'apps/web', type: 'program', entry: 'src/index.js', ready: { port: 8080, host: '0.0.0.0' }, start_timeout: 3000, args: [], cwd: '.' },
        { name: 'worker', version: '0.4.0', path: 'apps/worker', type: 'program', entry: 'index.js', ready: { output: 'ready' }, start_timeout: 60_000, args: [], cwd: '.' },
      ],
      node_types: {
        front: { apps: ['web'], workers: 2, process_name: 'shop-front' },
        back: { apps: ['worker'], workers: 0, process_name: 'back' },
      },
      default_node_type: 'back',
      runtime: { version: '22.1.0', target: 'linux-x64' },
      vm_args: 'rel/vm.args',
      sys_config: 'rel/sys.config',
      output_dir: 'out/rel',
      overlays: [{ mkdir: 'log' }, { template: { from: 'rel/overlay/motd.txt', to: 'etc/motd' } }],
      hooks: { pre_start: 'rel/hooks/pre_start.sh' },
    });
  });

  it('writes null for absent vm.args/sys.config, at_once readiness as a string, "." for the root app', () => {
    writeFiles(project, { 'package.json': JSON.stringify({ name: 'rootapp', version: '2.0.0' }), 'index.js': '' });
    const plain = configToPlain(resolve(base({ apps: ['.'], node_types: { rootapp: ['rootapp'] } })));
    expect(plain.vm_args).toBeNull();
    expect(plain.sys_config).toBeNull();
    expect(plain.runtime).toEqual({ version: 'system' });
    expect(plain.apps).toEqual([{ name: 'rootapp', version: '2.0.0', path: '.', type: 'module', entry: 'index.js', ready: 'at_once', start_timeout: 60_000 }]);
    expect(plain.output_dir).toBe('_rel');
  });

  it('round-trips: resolving the printed config gives the same resolved config', () => {
    const c = full();
    const again = resolve(configToPlain(c));
    expect(again).toEqual(c);
    expect(configToPlain(again)).toEqual(configToPlain(c));
  });
});

describe('isInside', () => {
  it.each([
    ['/a/b', '/a/b', true],
    ['/a/b', '/a/b/c', true],
    ['/a/b', '/a/b/c/../d', true],
    ['/a/b', '/a/bc', false],
    ['/a/b', '/a', false],
    ['/a/b', '/x/y', false],
  ])('isInside(%s, %s) is %s', (parent, child, inside) => {
    expect(isInside(parent, child)).toBe(inside);
  });
});
