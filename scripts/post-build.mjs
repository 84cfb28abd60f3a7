// After tsc: make the CLI executable, and bundle the node runtime (dist/node, ES modules) into
// the CommonJS files a release ships in lib/noderel-<vsn>/ (dist/runtime): boot.js, the node and
// every command; ctl.js, only the control commands' client (ctl.ts), which `bin/<name> ping`
// runs and which is measured against `node -e 0`; and worker-main.js, only what a worker of a
// node type with workers runs (worker-main.ts).
//
// Why one CommonJS file (bench/README.md has the figures): an ES module import of a built-in
// (`import fs from 'node:fs'`) evaluates every lazy export of it (fs/promises and readline,
// webcrypto, util's worker_threads, ...), and a graph of ES modules costs the loader's time and
// memory in every process: master, each worker and each control command. `require` of a built-in
// loads only the built-in.
import fs from 'node:fs';
import { build } from 'esbuild';

fs.chmodSync(new URL('../dist/cli/main.js', import.meta.url), 0o755);

const outDir = new URL('../dist/runtime/', import.meta.url);
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
for (const entry of ['boot', 'ctl', 'worker-main']) {
  const result = await build({
    entryPoints: [new URL(`../dist/node/entries/${entry}.js`, import.meta.url).pathname],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    outfile: new URL(`${entry}.js`, outDir).pathname,
    // Only Node built-ins may be imported (the release ships nothing else). `node:*` and
    // `packages: 'external'` leave every import that is not a file of dist/node as a `require`
    // (or `import()`) in the output, so an npm package is never inlined into the bundle (without
    // `packages`, esbuild would inline any package it finds in node_modules): the checks below
    // fail the build on it. esbuild itself fails only on a static import of a file it cannot
    // find; an `import()` it cannot resolve is a warning, left in the output (checked below too).
    external: ['node:*'],
    packages: 'external',
    // The runtime names its own files by path, never by URL: parsing a URL maps the URL parser
    // (ada) and ICU's pages of the node binary into every process (bench/README.md).
    define: { 'import.meta.filename': '__filename', 'import.meta.dirname': '__dirname' },
    banner: { js: `'use strict';` },
    legalComments: 'none',
    logLevel: 'warning',
  });

  const code = result.outputFiles[0].text;
  // src/node imports built-ins by name (`import { readFileSync } from 'node:fs'`), which esbuild
  // turns into a plain `require`. A default or namespace import (`import fs from 'node:fs'`)
  // would be wrapped in __toESM, which reads every property descriptor of the module and so
  // loads its lazy exports (fs/promises, util's worker_threads, ...) in every process.
  if (code.includes('__toESM(require("node:')) throw new Error(`post-build: ${entry}.js wraps a built-in in __toESM (its lazy exports would load): import it by name in src/node`);
  // A built-in named without `node:` (platform 'node' leaves `fs` external too) or an npm package.
  if (/require\("(?!node:)/.test(code)) throw new Error(`post-build: ${entry}.js requires a module that is not a node: built-in`);
  if (/\bimport\("(?!node:)/.test(code)) throw new Error(`post-build: ${entry}.js imports a module that is not a node: built-in`);
  if (code.includes('import.meta')) throw new Error(`post-build: import.meta left in the CommonJS bundle ${entry}.js`);
  fs.writeFileSync(new URL(`${entry}.js`, outDir), code);
}
fs.writeFileSync(new URL('package.json', outDir), `${JSON.stringify({ type: 'commonjs', private: true }, null, 2)}\n`);
