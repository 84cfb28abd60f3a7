import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as layout from '../../src/contract/layout.js';
import { applyPlan } from '../../src/assemble/apply.js';
import { checkDistinctTargets, describePlan, planRelease, renderLauncher, withPackageFrom, type Operation, type Plan } from '../../src/assemble/plan.js';
import { configToPlain, resolveConfig } from '../../src/config/resolve.js';
import { templatesDir } from '../../src/paths.js';
import type { Release } from '../../src/model.js';
import { listFiles, packageFiles, readSources } from '../../src/release/sources.js';
import { listTree, tempDir, writeFiles } from '../helpers/project.js';

let project: string;
let cleanup: () => void;

beforeEach(() => {
  ({ dir: project, cleanup } = tempDir('noderel-plan-'));
});

afterEach(() => cleanup());

describe('listFiles', () => {
  beforeEach(() => {
    writeFiles(project, {
      'b.js': '',
      'a.js': '',
      'B.txt': '',
      'lib/z.js': '',
      'lib/deep/y.js': '',
      'node_modules/dep/index.js': '',
      'lib/node_modules/nested/index.js': '',
      '.git/HEAD': '',
      '.env': '',
      '_rel/shop/bin/shop': '',
      'rel/relx.config': '',
    });
  });

  it('lists every file, relative with forward slashes, sorted, depth first, skipping node_modules and .git at any depth', () => {
    expect(listFiles(project)).toEqual(['.env', 'B.txt', '_rel/shop/bin/shop', 'a.js', 'b.js', 'lib/deep/y.js', 'lib/z.js', 'rel/relx.config']);
  });

  it('skips the directories given as absolute paths', () => {
    expect(listFiles(project, undefined, [path.join(project, '_rel'), path.join(project, 'rel')])).toEqual([
      '.env',
      'B.txt',
      'a.js',
      'b.js',
      'lib/deep/y.js',
      'lib/z.js',
    ]);
  });

  it('only skips a directory by its exact path, not by its name elsewhere', () => {
    writeFiles(project, { 'lib/rel/x.js': '' });
    expect(listFiles(project, undefined, [path.join(project, 'rel')])).toContain('lib/rel/x.js');
  });

  it('keeps only the files the filter accepts (given the relative path)', () => {
    const seen: string[] = [];
    const files = listFiles(project, (rel) => {
      seen.push(rel);
      return rel.startsWith('lib/');
    });
    expect(files).toEqual(['lib/deep/y.js', 'lib/z.js']);
    expect(seen).toContain('lib/deep/y.js');
    expect(seen).not.toContain('node_modules/dep/index.js');
  });

  it('lists symlinked files', () => {
    fs.symlinkSync(path.join(project, 'a.js'), path.join(project, 'c.js'));
    expect(listFiles(project)).toContain('c.js');
  });

  it('returns nothing for an empty directory', () => {
    const { dir, cleanup: done } = tempDir();
    try {
      expect(listFiles(dir)).toEqual([]);
    } finally {
      done();
    }
  });
});

/** A release model of a small project, with a fake runtime binary; cast where the plan does not look. */
function fakeRelease(extra: Record<string, unknown> = {}): Release {
  writeFiles(project, {
    'apps/web/package.json': JSON.stringify({ name: 'web', version: '1.2.3', main: 'src/index.js', files: ['src/', './bin'] }),
    'apps/web/src/index.js': 'export async function start() {}\n',
    'apps/web/bin/web': '#!/bin/sh\n',
    'apps/web/README.md': '# web\n',
    'apps/web/test/web.test.js': '',
    'apps/web/node_modules/ini/index.js': '',
    'deps/ini/package.json': '{"name":"ini","version":"5.0.0"}',
    'deps/ini/ini.js': '',
    'rel/overlay/motd': 'welcome to {{release_name}} {{ release_version }} on node {{node_version}} ({{default_node_type}}, {{unknown}})\n',
    'rel/overlay/etc/a.conf': 'name={{release_name}}\n',
    'rel/hooks/pre_start.sh': '#!/bin/sh\n',
    'fake-node/bin/node': 'ELF',
    'fake-node/LICENSE': 'MIT',
  });
  fs.chmodSync(path.join(project, 'apps/web/bin/web'), 0o755);
  const config = resolveConfig({
    root: project,
    config: {
      release: { name: 'shop', version: '2.0.0' },
      apps: ['apps/web'],
      node_types: { front: ['web'], back: ['web'] },
      vm_args: false,
      sys_config: false,
      overlays: [
        { mkdir: 'log/' },
        { template: { from: 'rel/overlay/motd', to: 'etc/motd' } },
        { template: { from: 'rel/overlay/etc', to: 'etc/conf' } },
        { copy: { from: 'rel/overlay/etc', to: 'etc/raw' } },
      ],
      hooks: { pre_start: 'rel/hooks/pre_start.sh' },
      ...extra,
    },
    sources: [],
  });
  return {
    config,
    name: config.name,
    version: config.version,
    noderelVersion: '0.1.0',
    runtime: {
      version: '22.1.0',
      target: 'linux-x64',
      binaryPath: path.join(project, 'fake-node/bin/node'),
      licensePath: path.join(project, 'fake-node/LICENSE'),
      modulesAbi: 127,
      runnable: true,
      source: 'registry',
    },
    ...readSources(config, config.apps.map((a) => ({
      ...a,
      deps: [{ name: 'ini', version: '5.0.0', source: path.join(project, 'deps/ini'), dest: path.join('node_modules', 'ini') }],
      libDir: `lib/${a.name}-${a.version}`,
    }))),
    configYaml: YAML.stringify(configToPlain(config)),
    vmArgsText: '--max-old-space-size=256\n',
    sysConfig: { web: { port: 8080 } },
    sysConfigSrc: false,
    releaseDir: path.join(config.outputDir, config.name),
    manifest: { name: 'shop', version: '2.0.0' },
    releaseEnv: "NODE_VSN='22.1.0'\n",
  } as unknown as Release;
}

describe('renderLauncher', () => {
  it('fills every @@PLACEHOLDER@@ of the launcher template', () => {
    const template = fs.readFileSync(path.join(templatesDir, 'bin', 'launcher.sh'), 'utf8');
    expect(template).toContain('@@'); // the test means something only while the template has placeholders
    const text = renderLauncher(fakeRelease());
    expect(text).not.toContain('@@');
    expect(text).toContain('\nREL_NAME="shop"\n');
    expect(text).toContain('\nREL_VSN="2.0.0"\n');
    expect(text).toContain('Generated by noderel 0.1.0;');
    // The rest of the launcher's constants come from releases/<vsn>/release.env, not placeholders.
    expect(text).toContain('. "$REL_DIR/release.env"');
    expect(text.split('\n')).toHaveLength(template.split('\n').length);
  });

  it('changes nothing but the placeholders', () => {
    const template = fs.readFileSync(path.join(templatesDir, 'bin', 'launcher.sh'), 'utf8');
    const text = renderLauncher(fakeRelease());
    // the template's text between placeholders, in order, with only one line's worth (no
    // newline) where each placeholder was (a regular expression of the whole file is too large)
    const parts = template.split(/@@[A-Z_]+@@/);
    let at = 0;
    parts.forEach((part, i) => {
      const found = i === 0 ? (text.startsWith(part) ? 0 : -1) : text.indexOf(part, at);
      expect(found, `the template's text after placeholder ${i} is not in the launcher`).toBeGreaterThanOrEqual(at);
      expect(text.slice(at, found)).not.toContain('\n');
      at = found + part.length;
    });
    expect(at).toBe(text.length);
  });
});

describe('planRelease', () => {
  const byTarget = (plan: Plan) => new Map(plan.operations.map((op) => [op.to, op]));

  it('plans the launchers, runtime, apps, noderel runtime, release files, overlays and hooks', () => {
    const r = fakeRelease();
    const plan = planRelease(r, 'secret-cookie');
    const ops = byTarget(plan);
    expect(plan.releaseDir).toBe(path.join(project, '_rel', 'shop'));
    expect(plan.cookie).toBe('secret-cookie');

    const launcher = renderLauncher(r);
    expect(ops.get('bin/shop')).toEqual({ kind: 'write', to: 'bin/shop', data: launcher, mode: 0o755 });
    expect(ops.get('bin/shop-2.0.0')).toEqual({ kind: 'write', to: 'bin/shop-2.0.0', data: launcher, mode: 0o755 });

    expect(ops.get('node-22.1.0/bin/node')).toEqual({ kind: 'copy', from: path.join(project, 'fake-node/bin/node'), to: 'node-22.1.0/bin/node', mode: 0o755 });
    expect(ops.get('node-22.1.0/LICENSE')).toMatchObject({ kind: 'copy', mode: 0o644 });

    // The app: only what its package.json "files" allows (plus package.json and README), and its deps.
    const appFiles = plan.operations.filter((op) => op.to.startsWith('lib/web-1.2.3/')).map((op) => op.to);
    expect(appFiles.sort()).toEqual([
      'lib/web-1.2.3/README.md',
      'lib/web-1.2.3/bin/web',
      'lib/web-1.2.3/node_modules/ini/ini.js',
      'lib/web-1.2.3/node_modules/ini/package.json',
      'lib/web-1.2.3/package.json',
      'lib/web-1.2.3/src/index.js',
    ]);
    expect(ops.get('lib/web-1.2.3/bin/web')).toMatchObject({ kind: 'copy', from: path.join(project, 'apps/web/bin/web'), mode: 0o755 });
    expect(ops.get('lib/web-1.2.3/src/index.js')).toMatchObject({ mode: 0o644 });

    // The noderel runtime: the bundles (boot.js, ctl.js, worker-main.js), plus a package.json that makes them CommonJS.
    const runtimeOps = plan.operations.filter((op) => op.to.startsWith('lib/noderel-0.1.0/'));
    expect(runtimeOps.map((op) => op.to)).toContain('lib/noderel-0.1.0/boot.js');
    expect(runtimeOps.map((op) => op.to).sort()).toEqual(['lib/noderel-0.1.0/boot.js', 'lib/noderel-0.1.0/ctl.js', 'lib/noderel-0.1.0/package.json', 'lib/noderel-0.1.0/worker-main.js']);
    const pkgOp = ops.get('lib/noderel-0.1.0/package.json') as Extract<Operation, { kind: 'write' }>;
    expect(JSON.parse(pkgOp.data)).toEqual({ name: 'noderel-runtime', version: '0.1.0', type: 'commonjs', private: true });

    const data = (to: string) => (ops.get(to) as Extract<Operation, { kind: 'write' }>).data;
    expect(JSON.parse(data('releases/2.0.0/release.json'))).toEqual({ name: 'shop', version: '2.0.0' });
    expect(data('releases/2.0.0/release.env')).toBe("NODE_VSN='22.1.0'\n");
    expect(YAML.parse(data('releases/2.0.0/config.yaml'))).toEqual(JSON.parse(JSON.stringify(configToPlain(r.config))));
    expect(data('releases/2.0.0/vm.args')).toBe('--max-old-space-size=256\n');
    expect(JSON.parse(data('releases/2.0.0/sys.config'))).toEqual({ web: { port: 8080 } });
    expect(data('releases/start.data')).toBe('22.1.0 2.0.0\n');
    expect(ops.get('releases/2.0.0/hooks/pre_start')).toEqual({ kind: 'copy', from: path.join(project, 'rel/hooks/pre_start.sh'), to: 'releases/2.0.0/hooks/pre_start', mode: 0o755 });

    // Overlays: mkdir, template (file and directory: rendered), copy (directory: copied as is).
    expect(ops.get('log')).toEqual({ kind: 'mkdir', to: 'log' });
    expect(data('etc/motd')).toBe('welcome to shop 2.0.0 on node 22.1.0 (front, {{unknown}})\n');
    expect(data('etc/conf/a.conf')).toBe('name=shop\n');
    expect(ops.get('etc/raw/a.conf')).toMatchObject({ kind: 'copy', from: path.join(project, 'rel/overlay/etc/a.conf') });

    expect([...plan.units].sort()).toEqual(
      ['bin/shop', 'bin/shop-2.0.0', 'node-22.1.0', 'lib/web-1.2.3', 'lib/noderel-0.1.0', 'releases/2.0.0', 'releases/start.data', 'etc/motd', 'etc/conf', 'etc/raw'].sort(),
    );
    // log/ holds the nodes' logs: the overlay makes it when missing, never replaces it.
    expect(plan.dirs).toEqual(['log']);
    // Nothing is planned outside the units the build owns and the overlays' directories.
    for (const op of plan.operations) {
      expect([...plan.units, ...(plan.dirs ?? [])].some((u) => op.to === u || op.to.startsWith(`${u}/`) || op.to.replace(/\/+$/, '') === u)).toBe(true);
    }
  });

  it('never ships the output directory or rel/ when the app is the project itself', () => {
    writeFiles(project, {
      'package.json': JSON.stringify({ name: 'shop', version: '2.0.0', main: 'server.js' }),
      'server.js': '',
      '_rel/shop/bin/shop': 'old build',
    });
    const r = fakeRelease({ apps: ['.'], node_types: { shop: ['shop'] }, overlays: [], hooks: {} });
    const appFiles = planRelease(r, 'c')
      .operations.filter((op) => op.to.startsWith('lib/shop-2.0.0/'))
      .map((op) => op.to.slice('lib/shop-2.0.0/'.length));
    expect(appFiles).toContain('server.js');
    expect(appFiles).toContain('apps/web/src/index.js');
    expect(appFiles.some((f) => f.startsWith('_rel/') || f.startsWith('rel/'))).toBe(false);
  });

  it('copies a module app in a subfolder of a `path: .` app once, as itself (regression: it was also copied inside the root app)', () => {
    writeFiles(project, {
      'package.json': JSON.stringify({ name: 'shop', version: '2.0.0', main: 'server.js' }),
      'server.js': '',
      'lib/util.js': '',
    });
    const r = fakeRelease({ apps: ['.', 'apps/web'], node_types: { shop: ['shop', 'web'] }, overlays: [], hooks: {} });
    const plan = planRelease(r, 'c');
    const files = (lib: string) => plan.operations.filter((op) => op.to.startsWith(`${lib}/`)).map((op) => op.to.slice(lib.length + 1));
    expect(files('lib/shop-2.0.0')).toContain('server.js');
    expect(files('lib/shop-2.0.0')).toContain('lib/util.js');
    expect(files('lib/shop-2.0.0').filter((f) => f.startsWith('apps/'))).toEqual([]);
    expect(files('lib/web-1.2.3')).toContain('src/index.js');
    // No source file is copied twice into the release, and no path is written twice.
    const appOps = plan.operations.filter((op) => /^lib\/(shop|web)-/.test(op.to) && !op.to.includes('/node_modules/'));
    const sources = appOps.flatMap((op) => (op.kind === 'copy' ? [op.from] : []));
    expect(sources.some((f) => f.endsWith(path.join('apps', 'web', 'src', 'index.js')))).toBe(true);
    expect(new Set(sources).size).toBe(sources.length);
    expect(new Set(plan.operations.map((op) => op.to)).size).toBe(plan.operations.length);
  });

  it('refuses a plan that writes one path twice, naming both sources', () => {
    const ops: Operation[] = [
      { kind: 'copy', from: '/a/x.js', to: 'lib/web-1.0.0/x.js', mode: 0o644 },
      { kind: 'mkdir', to: 'log/' },
      { kind: 'mkdir', to: 'log' },
      { kind: 'copy', from: '/b/x.js', to: 'lib/web-1.0.0/x.js', mode: 0o644 },
    ];
    expect(() => checkDistinctTargets(ops.slice(0, 3))).not.toThrow();
    expect(() => checkDistinctTargets(ops)).toThrow(/two sources would be written to lib\/web-1\.0\.0\/x\.js in the release: \/a\/x\.js and \/b\/x\.js/);
    // An overlay onto a file the build ships is such a plan.
    writeFiles(project, { 'rel/overlay/index.js': '' });
    expect(() => planRelease(fakeRelease({ overlays: [{ copy: { from: 'rel/overlay/index.js', to: 'lib/web-1.2.3/src/index.js' } }] }), 'c')).toThrow(/two sources would be written to lib\/web-1\.2\.3\/src\/index\.js/);
  });

  // Issue 10 item 17: `mkdir: log` made a rebuild delete log/<node>/console.log (the overlay's
  // destination was a unit, replaced as a whole), `mkdir: tmp` the pid files and sockets.
  describe('overlays under bin/, lib/, releases/, tmp/ and log/', () => {
    const overlays = [
      { mkdir: 'log' },
      { mkdir: 'tmp' },
      { mkdir: 'log/sasl' },
      { copy: { from: 'rel/overlay/etc', to: 'bin/tools' } },
      { template: { from: 'rel/overlay/motd', to: 'releases/2.0.0/motd' } },
      { copy: { from: 'rel/overlay/etc/a.conf', to: 'lib/web-1.2.3/priv/a.conf' } },
    ];
    // What the build did not write: a node's run state and log, the cookie, an older version,
    // an operator's own script beside the overlay's files.
    const theirs = {
      'log/web@host/console.log': 'line 1\n',
      'log/sasl/report.log': 'sasl\n',
      'tmp/web@host/node.pid': '4242\n',
      'tmp/web@host/ctl': '',
      'releases/1.0.0/release.json': JSON.stringify({ node_version: '22.1.0', noderel_version: '0.1.0', apps: {} }),
      'bin/tools/mine.sh': '#!/bin/sh\n',
    };

    it('are units only for the files they write; their directories are made, never replaced', () => {
      const plan = planRelease(fakeRelease({ overlays }), 'c');
      expect(plan.dirs).toEqual(['log', 'tmp', 'log/sasl']);
      for (const u of ['log', 'tmp', 'log/sasl', 'bin', 'bin/tools', 'lib', 'releases']) expect(plan.units, u).not.toContain(u);
      expect(plan.units).toContain('bin/tools/a.conf');
      // inside this build's own units, they go with them
      expect(plan.units).not.toContain('releases/2.0.0/motd');
      expect(plan.units).not.toContain('lib/web-1.2.3/priv/a.conf');
      expect(plan.operations.map((op) => op.to)).toEqual(expect.arrayContaining(['releases/2.0.0/motd', 'lib/web-1.2.3/priv/a.conf', 'bin/tools/a.conf']));
    });

    it('a rebuild keeps every file the build did not write, and writes its own', () => {
      const plan = planRelease(fakeRelease({ overlays }), 'c');
      applyPlan(plan, path.join(project, '_rel'));
      const rel = plan.releaseDir;
      writeFiles(rel, theirs);
      fs.writeFileSync(path.join(rel, 'releases/2.0.0/motd'), 'stale');
      const cookie = fs.readFileSync(path.join(rel, 'releases/COOKIE'), 'utf8');
      applyPlan(plan, path.join(project, '_rel'));
      for (const [file, text] of Object.entries(theirs)) expect(fs.readFileSync(path.join(rel, file), 'utf8'), file).toBe(text);
      expect(fs.readFileSync(path.join(rel, 'releases/COOKIE'), 'utf8')).toBe(cookie);
      expect(fs.readFileSync(path.join(rel, 'bin/tools/a.conf'), 'utf8')).toBe('name={{release_name}}\n');
      expect(fs.readFileSync(path.join(rel, 'releases/2.0.0/motd'), 'utf8')).toMatch(/^welcome to shop 2\.0\.0/);
      expect(fs.readFileSync(path.join(rel, 'lib/web-1.2.3/priv/a.conf'), 'utf8')).toBe('name={{release_name}}\n');
    });

    it('refuses to replace a directory that is not the build\'s with a file, or to mkdir where a file is; nothing is changed', () => {
      const plan = planRelease(fakeRelease({ overlays }), 'c');
      applyPlan(plan, path.join(project, '_rel'));
      const rel = plan.releaseDir;
      fs.rmSync(path.join(rel, 'bin/tools/a.conf'));
      writeFiles(rel, { 'bin/tools/a.conf/keep': 'mine\n' });
      const before = listTree(rel);
      expect(() => applyPlan(plan, path.join(project, '_rel'))).toThrow(/^refusing to replace the directory bin\/tools\/a\.conf in .* with a file: it is not the build's to remove$/);
      expect(listTree(rel)).toEqual(before);
      fs.rmSync(path.join(rel, 'bin/tools/a.conf'), { recursive: true });
      fs.rmSync(path.join(rel, 'tmp'), { recursive: true });
      fs.writeFileSync(path.join(rel, 'tmp'), '');
      expect(() => applyPlan(plan, path.join(project, '_rel'))).toThrow(/^refusing to make the directory tmp in .*: a file is there, and it is not the build's to remove$/);
      expect(fs.existsSync(path.join(rel, 'bin/tools/a.conf'))).toBe(false);
    });
  });

  it('leaves out the build leftovers of a native addon dependency, and records them', () => {
    writeFiles(project, {
      'deps/ini/binding.gyp': '{}',
      'deps/ini/build/Release/ini.node': 'shared object',
      'deps/ini/build/Release/libini.a': '!<arch>\nx',
      'deps/ini/build/Release/obj.target/ini/ini.o': '\x7fELF',
      'deps/ini/build/Makefile': '',
      'deps/ini/build/ini.target.mk': '',
      'deps/ini/build/config.gypi': '',
    });
    const plan = planRelease(fakeRelease(), 'c');
    const ini = plan.operations.filter((op) => op.to.startsWith('lib/web-1.2.3/node_modules/ini/')).map((op) => op.to.slice('lib/web-1.2.3/node_modules/ini/'.length));
    expect(ini.sort()).toEqual(['binding.gyp', 'build/Release/ini.node', 'ini.js', 'package.json']);
    expect([...(plan.omitted ?? [])].map((f) => path.relative(project, f)).sort()).toEqual([
      'deps/ini/build/Makefile', 'deps/ini/build/Release/libini.a', 'deps/ini/build/Release/obj.target/ini/ini.o', 'deps/ini/build/config.gypi', 'deps/ini/build/ini.target.mk',
    ].map((f) => f.split('/').join(path.sep)).sort());
  });

  it('withPackageFrom takes one package from another directory, keeping its nested packages', () => {
    writeFiles(project, { 'rebuilt/ini/package.json': '{"name":"ini","version":"5.0.0"}', 'rebuilt/ini/binding.gyp': '{}', 'rebuilt/ini/build/Release/ini.node': 'new', 'rebuilt/ini/build/Release/obj.target/x.o': '' });
    const plan = planRelease(fakeRelease(), 'c');
    const nested: Operation = { kind: 'copy', from: '/elsewhere/n.js', to: 'lib/web-1.2.3/node_modules/ini/node_modules/n/n.js', mode: 0o644 };
    const next = withPackageFrom({ ...plan, operations: [...plan.operations, nested] }, 'lib/web-1.2.3/node_modules/ini', path.join(project, 'rebuilt/ini'), packageFiles(path.join(project, 'rebuilt/ini')));
    const ini = next.operations.filter((op) => op.to.startsWith('lib/web-1.2.3/node_modules/ini/'));
    expect(ini.map((op) => [op.to, op.kind === 'copy' ? path.relative(project, op.from) : ''])).toEqual([
      ['lib/web-1.2.3/node_modules/ini/binding.gyp', path.join('rebuilt/ini/binding.gyp')],
      ['lib/web-1.2.3/node_modules/ini/build/Release/ini.node', path.join('rebuilt/ini/build/Release/ini.node')],
      ['lib/web-1.2.3/node_modules/ini/package.json', path.join('rebuilt/ini/package.json')],
      ['lib/web-1.2.3/node_modules/ini/node_modules/n/n.js', path.relative(project, '/elsewhere/n.js')],
    ]);
    expect(next.operations.length).toBe(plan.operations.length + 1 - 2 + 3);
    expect(next.omitted?.map((f) => path.basename(f))).toEqual(['x.o']);
  });

  it('writes nothing: planning leaves the output directory absent', () => {
    planRelease(fakeRelease(), 'c');
    expect(fs.existsSync(path.join(project, '_rel'))).toBe(false);
  });

  it('reads nothing: the model carries every source, so the plan is the same with the sources gone', () => {
    const r = fakeRelease();
    const before = planRelease(r, 'c');
    for (const dir of ['apps', 'deps', 'rel']) fs.rmSync(path.join(project, dir), { recursive: true, force: true });
    expect(planRelease(r, 'c')).toEqual(before);
  });

  it('names the packages it ships from the model (apps and their dependencies)', () => {
    const plan = planRelease(fakeRelease(), 'c');
    expect(plan.packages).toEqual([
      { name: 'web', to: 'lib/web-1.2.3', source: path.join(project, 'apps/web'), app: 'web', libDir: 'lib/web-1.2.3', dependency: false, optional: false },
      { name: 'ini', to: 'lib/web-1.2.3/node_modules/ini', source: path.join(project, 'deps/ini'), app: 'web', libDir: 'lib/web-1.2.3', dependency: true, optional: false },
    ]);
  });
});

describe('describePlan', () => {
  it('prints one line per operation', () => {
    const plan: Plan = {
      releaseDir: '/x/_rel/shop',
      units: [],
      cookie: 'c',
      operations: [
        { kind: 'mkdir', to: 'log' },
        { kind: 'write', to: 'bin/shop', data: 'héllo', mode: 0o755 },
        { kind: 'write', to: 'releases/start.data', data: '', mode: 0o644 },
        { kind: 'copy', from: '/src/app/index.js', to: 'lib/app-1.0.0/index.js', mode: 0o644 },
      ],
    };
    expect(describePlan(plan)).toEqual([
      'mkdir log',
      'write bin/shop (6 bytes, 755)',
      'write releases/start.data (0 bytes, 644)',
      'copy  lib/app-1.0.0/index.js <- /src/app/index.js',
    ]);
  });

  it('prints nothing for an empty plan', () => {
    expect(describePlan({ releaseDir: '/x', units: [], cookie: '', operations: [] })).toEqual([]);
  });
});

describe('layout', () => {
  it('names every path of the release layout (contract/layout.ts)', () => {
    expect(layout.START_DATA).toBe('releases/start.data');
    expect(layout.COOKIE).toBe('releases/COOKIE');
    expect(layout.launcher('kazoo')).toBe('bin/kazoo');
    expect(layout.versionedLauncher('kazoo', '4.3.0')).toBe('bin/kazoo-4.3.0');
    expect(layout.nodeDir('22.23.3')).toBe('node-22.23.3');
    expect(layout.nodeBinary('22.23.3')).toBe('node-22.23.3/bin/node');
    expect(layout.noderelDir('0.1.0')).toBe('lib/noderel-0.1.0');
    expect(layout.releaseVersionDir('4.3.0')).toBe('releases/4.3.0');
    expect(layout.tarballName('kazoo', '4.3.0')).toBe('kazoo-4.3.0.tar.gz');
    expect(layout.upgradeTarball('kazoo', '4.3.0')).toBe('releases/kazoo-4.3.0.tar.gz');
    expect(layout.appDir('crossbar', '4.3.0')).toBe('lib/crossbar-4.3.0');
    expect(layout.manifestFile('4.3.0')).toBe('releases/4.3.0/release.json');
    expect(layout.releaseEnvFile('4.3.0')).toBe('releases/4.3.0/release.env');
    expect(layout.configYamlFile('4.3.0')).toBe('releases/4.3.0/config.yaml');
    expect(layout.vmArgsFile('4.3.0')).toBe('releases/4.3.0/vm.args');
    expect(layout.sysConfigFile('4.3.0')).toBe('releases/4.3.0/sys.config');
    expect(layout.hookFile('4.3.0', 'pre_start')).toBe('releases/4.3.0/hooks/pre_start');
    expect(layout.releasePath('/opt/kazoo', layout.COOKIE)).toBe('/opt/kazoo/releases/COOKIE');
  });

  it('keeps the binary inside the runtime directory and the manifest directory under releases/', () => {
    expect(layout.nodeBinary('1.2.3').startsWith(`${layout.nodeDir('1.2.3')}/`)).toBe(true);
    expect(path.posix.dirname(layout.START_DATA)).toBe('releases');
    expect(path.posix.dirname(layout.COOKIE)).toBe('releases');
  });
});
