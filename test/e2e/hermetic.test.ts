/**
 * Hermetic module resolution at run time: a package the release does not ship fails to load in
 * `_rel/` exactly as it would on the target host, even though Node's search would find it in the
 * project the release was built in, with an error naming the package and the app. CommonJS and
 * ES modules, on the system runtime (Node 20: `_resolveFilename` and `module.register`) and on a
 * pinned Node 22 (`module.registerHooks`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { installFakePackage, noderel, tempDir, writeFiles } from '../helpers/project.js';
import { spawnChild, useChildProcesses } from '../helpers/proc.js';

useChildProcesses();
const cleanups: (() => void)[] = [];
afterAll(() => {
  while (cleanups.length) cleanups.pop()!();
});

const CJS = `const shipped = require('shipped');
let phantom;
try { phantom = 'loaded ' + require('phantom'); } catch (err) { phantom = err.code + ': ' + err.message; }
console.log('shipped=' + shipped);
console.log('phantom=' + phantom);
console.log('probe done');
setInterval(() => {}, 1000);
`;

const ESM = `import shipped from 'shipped';
let phantom;
try { phantom = 'loaded ' + (await import('phantom')).default; } catch (err) { phantom = err.code + ': ' + err.message; }
console.log('shipped=' + shipped);
console.log('phantom=' + phantom);
console.log('probe done');
setInterval(() => {}, 1000);
`;

/**
 * A project whose app declares `shipped` only; `phantom` is installed at the project root
 * (hoisted there by another workspace, say), so Node's search from inside `_rel/` finds it.
 */
function project(name: string, esm: boolean): string {
  const t = tempDir(`noderel-${name}-`);
  cleanups.push(t.cleanup);
  writeFiles(t.dir, {
    'package.json': JSON.stringify({ name, version: '1.0.0', main: 'server.js', ...(esm ? { type: 'module' } : {}), dependencies: { shipped: '1.0.0' } }),
    'server.js': esm ? ESM : CJS,
  });
  installFakePackage(t.dir, 'shipped', '1.0.0', {}, "module.exports = 'yes';\n");
  installFakePackage(t.dir, 'phantom', '1.0.0', {}, "module.exports = 'from outside the release';\n");
  // The lockfile npm would have written: the tree arborist reads.
  writeFiles(t.dir, {
    'package-lock.json': JSON.stringify({
      name, version: '1.0.0', lockfileVersion: 3, requires: true,
      packages: {
        '': { name, version: '1.0.0', dependencies: { shipped: '1.0.0' } },
        'node_modules/shipped': { version: '1.0.0' },
        'node_modules/phantom': { version: '1.0.0', extraneous: true },
      },
    }),
  });
  expect(noderel(t.dir, ['init', '--ready-output', 'probe done']).code).toBe(0);
  return t.dir;
}

async function probe(dir: string, name: string, runtime: string[]): Promise<string> {
  const build = noderel(dir, ['build', '-q', ...runtime]);
  expect(build.code, build.stderr).toBe(0);
  const rel = path.join(dir, '_rel', name);
  expect(fs.existsSync(path.join(rel, 'lib', `${name}-1.0.0`, 'node_modules', 'phantom'))).toBe(false);
  const node = spawnChild(path.join(rel, 'bin', name), ['foreground'], { env: { ...process.env } });
  await node.waitForOutput(/node \S+ ready/);
  node.signal('SIGTERM');
  await node.waitForExit();
  return node.output;
}

describe('a package the release does not ship is not found outside it', () => {
  for (const [runtime, flags] of [['the system runtime', []], ['a pinned Node 22', ['--runtime', '22.23.3']]] as const) {
    it(`CommonJS, ${runtime}`, async () => {
      const out = await probe(project('hermcjs', false), 'hermcjs', [...flags]);
      expect(out).toMatch(/shipped=yes/);
      expect(out).toMatch(/phantom=(MODULE_NOT_FOUND|ERR_MODULE_NOT_FOUND): Cannot find package 'phantom' imported from \S+\/lib\/hermcjs-1\.0\.0\/server\.js: app hermcjs does not ship it \(Node found it outside the release, at \S+\/node_modules\/phantom\/index\.js/);
    });

    it(`ES modules, ${runtime}`, async () => {
      const out = await probe(project('hermesm', true), 'hermesm', [...flags]);
      expect(out).toMatch(/shipped=yes/);
      expect(out).toMatch(/phantom=ERR_MODULE_NOT_FOUND: Cannot find package 'phantom' imported from \S+\/lib\/hermesm-1\.0\.0\/server\.js: app hermesm does not ship it/);
    });
  }

  it('NODEREL_HERMETIC=0 lets the search leave the release (for debugging only)', async () => {
    const dir = project('hermoff', false);
    expect(noderel(dir, ['build', '-q']).code).toBe(0);
    const node = spawnChild(path.join(dir, '_rel', 'hermoff', 'bin', 'hermoff'), ['foreground'], { env: { ...process.env, NODEREL_HERMETIC: '0' } });
    await node.waitForOutput(/node \S+ ready/);
    expect(node.output).toMatch(/phantom=loaded from outside the release/);
    node.signal('SIGTERM');
    await node.waitForExit();
  });
});
