/**
 * Bad input (issue 2): each case fails with one line naming the file, line or key and the
 * fix, exits 1, and leaves nothing half-written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listTree, minimalProject, noderel, tempDir, writeFiles } from '../helpers/project.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function fixture(files: Record<string, string> = {}): string {
  const t = minimalProject();
  cleanups.push(t.cleanup);
  writeFiles(t.dir, files);
  return t.dir;
}

/** Builds and expects a clean failure: exit 1, a one-line error matching `re`, no `_rel/`. */
function expectBuildFailure(dir: string, re: RegExp, args: string[] = []): string {
  const r = noderel(dir, ['build', ...args]);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines[0]).toMatch(/^noderel: /);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace for an expected error
  expect(fs.existsSync(path.join(dir, '_rel'))).toBe(false);
  return r.stderr;
}

const baseConfig = fs.readFileSync(new URL('../fixtures/minimal/rel/relx.config', import.meta.url), 'utf8');

describe('bad input fails cleanly', () => {
  it('a relx.config.script that throws names the script and the error', () => {
    const dir = fixture({ 'rel/relx.config.script': "export default () => { throw new Error('boom in script'); };\n" });
    expectBuildFailure(dir, /rel\/relx\.config\.script: threw Error: boom in script; fix the script/);
  });

  it('a relx.config.script returning a non-object is refused', () => {
    const dir = fixture({ 'rel/relx.config.script': 'export default () => 42;\n' });
    expectBuildFailure(dir, /rel\/relx\.config\.script: returned number, expected the config object; return CONFIG/);
  });

  // Issue 10, item 19: these used to end noderel with exit 0 (process.exit) or 13 (a promise
  // never settled) and no output at all.
  it.each([
    ['calls process.exit(0)', 'export default (C) => { process.exit(0); return C; };', /rel\/relx\.config\.script: called process\.exit\(0\) instead of returning the config/],
    ['never settles', 'export default () => new Promise(() => {});', /rel\/relx\.config\.script: never returned the config: its promise was still pending/],
    ['runs past NODEREL_SCRIPT_TIMEOUT', 'export default () => { for (;;); };', /rel\/relx\.config\.script: did not finish within 1 s; .*NODEREL_SCRIPT_TIMEOUT/],
  ])('a relx.config.script that %s fails with one line naming it, exit 1, the previous release untouched', (_what, script, re) => {
    const dir = fixture({ 'rel/relx.config.script': 'export default (C) => C;\n' });
    expect(noderel(dir, ['build', '-q']).code).toBe(0);
    const rel = path.join(dir, '_rel');
    const before = listTree(rel);
    writeFiles(dir, { 'rel/relx.config.script': `${script}\n` });
    const r = noderel(dir, ['build'], { NODEREL_SCRIPT_TIMEOUT: '1' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^noderel: /);
    expect(r.stderr).toMatch(re);
    expect(listTree(rel)).toEqual(before);
    expect(fs.readdirSync(path.join(dir, 'rel')).filter((f) => f.startsWith('.relx.config.script'))).toEqual([]);
  });

  it('an unknown app in a node type names the key path and the known apps', () => {
    const dir = fixture({ 'rel/relx.config': baseConfig.replace('apps: [greeter]', 'apps: [greeter, greeter2]') });
    expectBuildFailure(dir, /node_types\.web\.apps\[1\]: unknown app "greeter2"; known: greeter/);
  });

  it('a duplicate node type is reported with its position', () => {
    const dir = fixture({ 'rel/relx.config': `${baseConfig}\n`.replace('node_types:\n  web:\n    apps: [greeter]\n', 'node_types:\n  web:\n    apps: [greeter]\n  web:\n    apps: [greeter]\n') });
    expectBuildFailure(dir, /rel\/relx\.config:\d+:\d+: duplicate key/);
  });

  it('a duplicate node type in list form is reported by key path', () => {
    const dir = fixture({
      'rel/relx.config': baseConfig.replace('node_types:\n  web:\n    apps: [greeter]\n', 'node_types:\n  - {name: web, apps: [greeter]}\n  - {name: web, apps: [greeter]}\n'),
    });
    expectBuildFailure(dir, /node_types\[1\]: duplicate node type "web"/);
  });

  it('an empty version is refused with the fix', () => {
    const dir = fixture({ 'rel/relx.config': baseConfig.replace('version: 1.0.0', 'version: ""') });
    expectBuildFailure(dir, /release\.version: must not be empty; set e\.g\. version: 1\.0\.0/);
  });

  it('every config problem is reported in one run', () => {
    const dir = fixture({
      'rel/relx.config': baseConfig.replace('version: 1.0.0', 'version: ""').replace('apps: [greeter]', 'apps: [nope]').replace('runtime: system', 'runtime: system\nbogus_key: 1'),
    });
    const err = expectBuildFailure(dir, /3 problems/);
    expect(err).toMatch(/release\.version/);
    expect(err).toMatch(/node_types\.web\.apps\[0\]: unknown app "nope"/);
    expect(err).toMatch(/bogus_key: unknown key/);
  });

  it('an unknown Node flag in vm.args names file:line', () => {
    const dir = fixture({ 'rel/vm.args': '# flags\n--max-old-space-size=128\n--frobnicate-the-heap\n' });
    expectBuildFailure(dir, /rel\/vm\.args:3: unknown Node flag --frobnicate-the-heap/);
  });

  // Issue 10, item 20: these passed the build; the node then died with code 9 (or took the rest
  // of the line as a value).
  it('a vm.args flag value of the wrong type names file:line, the flag and its type', () => {
    const dir = fixture({ 'rel/vm.args': '# flags\n--max-old-space-size=abc\n' });
    expectBuildFailure(dir, /^noderel: rel\/vm\.args:2: --max-old-space-size=abc: the value of --max-old-space-size must be a whole number >= 0 \(V8 type size_t\), not "abc": node would exit with code 9 at start; write --max-old-space-size=<whole number>\n$/);
  });

  it('a V8 flag with its value after a space is refused with the = form', () => {
    const dir = fixture({ 'rel/vm.args': '--stack-size 2000\n' });
    expectBuildFailure(dir, /rel\/vm\.args:1: --stack-size 2000: V8 flags take their value after = .*; write --stack-size=2000/);
  });

  it('an unbalanced quote in vm.args names file:line', () => {
    const dir = fixture({ 'rel/vm.args': '-name web\n-env FOO "bar baz\n' });
    expectBuildFailure(dir, /^noderel: rel\/vm\.args:2: unbalanced " at column 10 in "-env FOO "bar baz"; close the quote on this line/);
  });

  it('a circular -args_file names the chain', () => {
    const dir = fixture({ 'rel/vm.args': '-args_file extra.args\n', 'rel/extra.args': '-args_file vm.args\n' });
    expectBuildFailure(dir, /circular -args_file include: rel\/vm\.args:1 -> rel\/extra\.args:1 -> rel\/vm\.args/);
  });

  it('a YAML syntax error in sys.config names file:line:col', () => {
    const dir = fixture({ 'rel/sys.config': 'greeter:\n  port: [1, 2\n' });
    expectBuildFailure(dir, /rel\/sys\.config:\d+:\d+: .*fix the YAML syntax/);
  });

  it('an unknown runtime version lists published ones', () => {
    const dir = fixture({ 'rel/relx.config': baseConfig.replace('runtime: system', 'runtime: 22.99.1') });
    expectBuildFailure(dir, /22\.99\.1.*not published.*22\.\d+\.\d+/);
  });

  it('a target the registry does not publish is named', () => {
    const dir = fixture({ 'rel/relx.config': baseConfig.replace('runtime: system', 'runtime: {version: 22.23.3, target: darwin-arm64}') });
    expectBuildFailure(dir, /darwin-arm64/);
  });

  it('an unknown target is refused with the known ones', () => {
    const dir = fixture({ 'rel/relx.config': baseConfig.replace('runtime: system', 'runtime: {version: 22.23.3, target: linux-mips}') });
    expectBuildFailure(dir, /runtime\.target: unknown target "linux-mips"; known: linux-x64/);
  });

  it('an output directory outside the project needs --force', () => {
    const dir = fixture();
    const out = tempDir();
    cleanups.push(out.cleanup);
    const target = path.join(out.dir, 'elsewhere');
    expectBuildFailure(dir, /output_dir: .*elsewhere is outside the project .*; pass --force/, ['--output', target]);
    expect(fs.existsSync(target)).toBe(false);
  });

  it('a native addon built for another Node ABI names the module', () => {
    const dir = fixture();
    // A compiled addon carries its ABI in the exported node_register_module_v<N> symbol.
    const addon = Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(64), Buffer.from('node_register_module_v115\0')]);
    const pkg = path.join(dir, 'apps/greeter/node_modules/shout');
    fs.mkdirSync(path.join(pkg, 'build/Release'), { recursive: true });
    fs.writeFileSync(path.join(pkg, 'build/Release/shout.node'), addon);
    expectBuildFailure(dir, /native addon "shout" .*NODE_MODULE_VERSION 115.*pinned runtime is 127/, ['--runtime', '22.23.3']);
    // The same addon ships with a runtime of its ABI, and a devDependency's addon is never checked.
    fs.renameSync(path.join(pkg, 'build'), path.join(dir, 'apps/greeter/node_modules/devonly/build'));
    const ok = noderel(dir, ['build', '-q', '--runtime', '22.23.3']);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('a failed rebuild leaves the previous release untouched', () => {
    const dir = fixture();
    expect(noderel(dir, ['build', '-q']).code).toBe(0);
    const before = listTree(path.join(dir, '_rel'));
    writeFiles(dir, { 'rel/vm.args': '--no-such-flag-anywhere\n' });
    const r = noderel(dir, ['build']);
    expect(r.code).toBe(1);
    expect(listTree(path.join(dir, '_rel'))).toEqual(before);
  });
});
