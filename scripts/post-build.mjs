// After tsc: make the CLI executable, and bundle the node runtime (dist/node, ES modules) into
// the one CommonJS file a release ships as lib/noderel-<vsn>/boot.js (dist/runtime).
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
const result = await build({
  entryPoints: [new URL('../dist/node/boot.js', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  write: false,
  outfile: new URL('boot.js', outDir).pathname,
  // Only Node built-ins may be imported (the release ships nothing else); esbuild fails the build
  // on anything it cannot resolve inside dist/node.
  external: ['node:*'],
  define: { 'import.meta.url': '__noderel_import_meta_url' },
  banner: { js: `'use strict';\nconst __noderel_import_meta_url = require('node:url').pathToFileURL(__filename).href;` },
  legalComments: 'none',
  logLevel: 'warning',
});

let code = result.outputFiles[0].text;
// esbuild wraps a default or namespace import of a CommonJS module in __toESM, which copies every
// property descriptor; for node:util and node:fs that loads their lazy exports (worker_threads,
// fs/dir, ...). For built-ins a view that reads through to the module is enough.
const builtinRequire = /__toESM\((require\("node:[a-z_/]+"\)), 1\)/g;
code = code.replace(builtinRequire, '__noderel_builtin($1)');
code = code.replace('"use strict";\n', '"use strict";\nconst __noderel_builtin = (mod) => ({ __proto__: mod, default: mod });\n');
if (/require\("(?!node:)/.test(code)) throw new Error('post-build: the runtime bundle requires a module that is not a node: built-in');
if (code.includes('import.meta')) throw new Error('post-build: import.meta left in the CommonJS runtime bundle');

fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(new URL('boot.js', outDir), code);
fs.writeFileSync(new URL('package.json', outDir), `${JSON.stringify({ type: 'commonjs', private: true }, null, 2)}\n`);
