/**
 * The corpus (issue 9): real apps built from packages of the npm registry, made into releases by
 * `noderel init` + `noderel tar`, unpacked into a fresh directory with no node_modules in any
 * ancestor, and operated there as they will be deployed: `start`, requests, `restart`, `reload`,
 * HUP, USR2 under wrk, `stop`, with the launcher run from the release root. No request may fail.
 *
 *   1. express 5, CommonJS, listening only when it is the main module
 *   2. fastify 5, ESM, top-level `await app.listen()`
 *   3. http-server's own bin as the entry, with `args` (port from ${STATIC_PORT}), serving public/
 *   4. an npm workspaces monorepo (api -> lib + express), built from its root
 *   5. better-sqlite3 (native addon) built with --runtime 22.23.3 --rebuild-addons; the
 *      cross-target build refused
 *   6. pino logging heavily to stdout, ready by an output pattern, through reopen_logs; and pino
 *      writing to fd 1 itself (pino.destination(1)), as a `node app.js > log` user may
 *
 * Needs the npm registry (skipped with a message when it is unreachable), wrk, and a C++
 * toolchain for better-sqlite3 (.ci/run installs them). The apps are prepared at the start
 * (installs in parallel, one `noderel tar` at a time, the addon build beside them; npm's cache
 * under os.tmpdir() is shared) and operated in turn. One app alone:
 * `npx vitest run test/corpus -t fastify` (only the apps whose tests run are prepared).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCurrentSuite } from 'vitest/suite';
import type { Task } from '@vitest/runner';
import { useChildProcesses } from '../helpers/proc.js';
import { tempDir } from '../helpers/project.js';
import {
  alive, Deployed, httpLoad, noderel, prepare, registry, removeTempDirs, underWrk, waitFor, wrkFailures,
  type AppSpec, type LoadResult, type Prepared,
} from './corpus.js';

useChildProcesses();

const REGISTRY = registry();
if (!REGISTRY.reachable) {
  console.warn(
    `\n*** test/corpus SKIPPED: the npm registry is unreachable (npm view express version: ${REGISTRY.why}).\n` +
      '*** The corpus tier installs real packages from it; run it where the registry answers.\n',
  );
}

/** The pinned runtime of the addon app: another major than the Node running the build. */
const ADDON_RUNTIME = '22.23.3';

const pkg = (o: Record<string, unknown>) => `${JSON.stringify({ version: '1.0.0', private: true, ...o }, null, 2)}\n`;

// --- The apps ----------------------------------------------------------------------------------

/** What a `node app.js` user can look at from inside: every app answers with it. */
const WHOAMI_CJS = `{ pid: process.pid, cwd: process.cwd(), argv1: process.argv[1], args: process.argv.slice(2), execPath: process.execPath }`;

const EXPRESS: AppSpec = {
  label: 'express',
  files: {
    'package.json': pkg({ name: 'corpus-express', main: 'app.js', dependencies: { express: '^5.1.0' }, devDependencies: { 'is-number': '^7.0.0' } }),
    'app.js': `const express = require('express');

const app = express();
app.get('/', (req, res) => {
  res.json({ app: 'express', main: require.main === module, filename: __filename, express: require.resolve('express'), ...${WHOAMI_CJS} });
});
module.exports = app;

if (require.main === module) {
  const port = Number(process.env.PORT || 3000);
  app.listen(port, () => console.log(\`express listening on \${port}\`));
}
`,
  },
  init: (port) => ['--port', String(port)],
};

const FASTIFY: AppSpec = {
  label: 'fastify',
  files: {
    'package.json': pkg({ name: 'corpus-fastify', type: 'module', main: 'server.js', dependencies: { fastify: '^5.0.0' } }),
    'server.js': `import Fastify from 'fastify';
import { fileURLToPath } from 'node:url';

const app = Fastify();
const main = process.argv[1] === fileURLToPath(import.meta.url);
app.get('/', async () => ({ app: 'fastify', main, filename: fileURLToPath(import.meta.url), fastify: import.meta.resolve('fastify'), ...${WHOAMI_CJS} }));
await app.listen({ port: Number(process.env.PORT ?? 3000) });
console.log('fastify listening');
`,
  },
  init: (port) => ['--port', String(port)],
};

const STATIC: AppSpec = {
  label: 'http-server',
  files: {
    'package.json': pkg({ name: 'corpus-static', dependencies: { 'http-server': '^14.1.1' } }),
    'public/index.html': '<h1>corpus static index</h1>\n',
    'public/about.txt': 'served from public/\n',
  },
  init: (port) => ['--entry', 'node_modules/http-server/bin/http-server', '--port', String(port)],
  config: (config) => {
    // The port comes from args only (http-server would take $PORT too: the variable is another).
    config.apps[0].args = ['public', '-p', '${STATIC_PORT}'];
  },
};

const WORKSPACES: AppSpec = {
  label: 'workspaces',
  files: {
    'package.json': pkg({ name: 'corpus-mono', workspaces: ['packages/*'], devDependencies: { 'is-number': '^7.0.0' } }),
    'packages/lib/package.json': pkg({ name: '@corpus/lib', type: 'module', exports: './index.js', dependencies: { picocolors: '^1.1.0' } }),
    'packages/lib/index.js': `import pc from 'picocolors';

export const greet = (who) => \`hello, \${who} (colors: \${typeof pc.bold})\`;
`,
    'packages/api/package.json': pkg({ name: '@corpus/api', type: 'module', main: 'server.js', dependencies: { '@corpus/lib': '1.0.0', express: '^5.1.0' } }),
    'packages/api/server.js': `import express from 'express';
import { greet } from '@corpus/lib';

const app = express();
app.get('/', (req, res) => res.json({ app: 'workspaces', greeting: greet('corpus'), pid: process.pid, cwd: process.cwd() }));
const port = Number(process.env.PORT ?? 3000);
app.listen(port, '127.0.0.1', () => console.log(\`api listening on \${port}\`));
`,
  },
  init: (port) => ['--entry', 'packages/api/server.js', '--port', String(port)],
};

const SQLITE: AppSpec = {
  label: 'better-sqlite3',
  // Installed as users install it: npm's install script builds (or downloads) the addon for the
  // Node running npm, and --rebuild-addons builds it again for the pinned runtime.
  files: {
    'package.json': pkg({ name: 'corpus-sqlite', main: 'server.js', dependencies: { 'better-sqlite3': '^12.0.0' } }),
    'server.js': `const http = require('node:http');
const Database = require('better-sqlite3');

const db = new Database(':memory:');
db.exec('create table fruit (name text primary key, qty integer)');
const insert = db.prepare('insert into fruit values (?, ?)');
for (const [name, qty] of [['apple', 3], ['pear', 5], ['fig', 7]]) insert.run(name, qty);
const totals = db.prepare('select count(*) as kinds, sum(qty) as qty, sqlite_version() as sqlite from fruit');

const port = Number(process.env.PORT || 3000);
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ app: 'better-sqlite3', pid: process.pid, node: process.version, ...totals.get() }));
}).listen(port, '127.0.0.1', () => console.log(\`sqlite listening on \${port}\`));
`,
  },
  init: (port) => ['--port', String(port)],
  tar: ['--runtime', ADDON_RUNTIME, '--rebuild-addons'],
};

const BOOT_LINES = 20_000;
/**
 * pino, logging each request, a tick every 5 ms and `bootLines` lines before it listens. `dest`:
 * pino's own choice (process.stdout here: it sees the stream is wrapped) or
 * `pino.destination(1)`, the fast path pino's docs recommend, which writes to fd 1 itself.
 */
const pinoApp = (label: string, dest: 'default' | 'fd1', bootLines: number): AppSpec => ({
  label,
  files: {
    'package.json': pkg({ name: `corpus-${label}`, main: 'server.js', dependencies: { pino: '^10.0.0' } }),
    'server.js': `const http = require('node:http');
const pino = require('pino');

const logger = ${dest === 'fd1' ? 'pino(pino.destination(1))' : 'pino()'};
const port = Number(process.env.PORT || 3000);
for (let i = 0; i < ${bootLines}; i++) logger.info({ i }, 'warming up');
let tick = 0;
setInterval(() => logger.info({ tick: ++tick }, 'tick'), 5);
http.createServer((req, res) => {
  logger.info({ url: req.url }, 'request');
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ app: 'pino', pid: process.pid }));
}).listen(port, '127.0.0.1', () => logger.info(\`server ready on port \${port}\`));
`,
  },
  init: () => ['--ready-output', 'server ready on port \\d+'],
});
const PINO = pinoApp('pino', 'default', BOOT_LINES);
const PINO_FD = pinoApp('pino-fd1', 'fd1', 1000);

// --- Preparation: every app whose tests run, at once; awaited app by app ------------------------

const preparations = new Map<string, Promise<Prepared>>();
/** The app of each describe block, by its title. */
const specOfSuite = new Map<string, AppSpec>();
const deployed: Deployed[] = [];

/** Does `task` hold a test that will run (not filtered out by -t, not skipped)? */
function runs(task: Readonly<Task>): boolean {
  return task.type === 'suite' ? task.tasks.some(runs) : task.mode === 'run';
}

/**
 * Registers the app of the enclosing describe block: its beforeAll waits for the release
 * (prepared by the corpus's beforeAll) and deploys it. Returns the deployed release.
 */
function deploy(spec: AppSpec, o: { portVar?: string } = {}): { app: () => Deployed; prep: () => Prepared } {
  specOfSuite.set(getCurrentSuite().name, spec);
  let d: Deployed | undefined;
  let p: Prepared | undefined;
  beforeAll(async () => {
    const preparation = preparations.get(spec.label);
    if (!preparation) throw new Error(`${spec.label} was not prepared`);
    p = await preparation;
    d = new Deployed(p, o);
    deployed.push(d);
  }, 900_000);
  return {
    app: () => {
      if (!d) throw new Error(`${spec.label}: not deployed`);
      return d;
    },
    prep: () => p!,
  };
}

// --- The operations every app goes through ------------------------------------------------------

interface Ops {
  app: () => Deployed;
  /** The path requests go to. */
  path?: string;
  /** A problem with a 200 answer's body, or undefined. */
  check?: (body: string) => string | undefined;
  /** The pid of the process that answered (apps that say it), else the node's pid is used. */
  pidOf?: (body: string) => number;
}

const failure = (d: Deployed, r: { status: number | null; stdout: string; stderr: string }) =>
  `exit ${r.status}\n${r.stdout}${r.stderr}\n--- console.log (tail) ---\n${d.logTail()}`;

/** Starts the node unless it runs (a test after a failed one tests its own operation). */
async function ensureRunning(d: Deployed): Promise<void> {
  if ((await d.pid()) !== undefined) return;
  const r = await d.run(['start', '--timeout', '30']);
  if (r.status !== 0) throw new Error(`(the node was not running, and start failed) ${failure(d, r)}`);
  await d.pid();
}

function startTest(o: Ops): void {
  it('start returns 0 once the app is ready, and it answers', async () => {
    const d = o.app();
    const r = await d.run(['start', '--timeout', '30']);
    expect(r.status, failure(d, r)).toBe(0);
    const pid = await d.run(['pid']);
    expect(pid.status, `bin/${d.name} pid, after start returned 0: ${pid.stdout}${pid.stderr}`).toBe(0);
    d.seen.add(Number(pid.stdout.trim()));
    const res = await d.get(o.path);
    expect(res.status, res.body).toBe(200);
    expect(o.check?.(res.body)).toBeUndefined();
    expect((await d.run(['ping'])).stdout.trim()).toBe('pong');
  });
}

/** Runs `action` under in-process load (httpLoad) and returns what the load saw. */
async function underLoad(d: Deployed, urlPath: string, check: Ops['check'], action: () => Promise<void>): Promise<LoadResult> {
  const load = httpLoad(d.port, urlPath, check);
  let result: LoadResult | undefined;
  try {
    await load.flowing();
    await action();
  } finally {
    result = await load.stop();
  }
  return result;
}

function operationTests(o: Ops): void {
  const urlPath = o.path ?? '/';
  const servedBy = async (d: Deployed): Promise<number | undefined> => {
    if (!o.pidOf) return d.pid();
    const res = await d.get(urlPath);
    return res.status === 200 ? o.pidOf(res.body) : undefined;
  };

  it('restart returns once the app is ready again, in a new process on the same socket; no request fails', async () => {
    const d = o.app();
    await ensureRunning(d);
    const before = (await servedBy(d))!;
    const node = (await d.pid())!;
    const load = await underLoad(d, urlPath, o.check, async () => {
      const r = await d.run(['restart']);
      const right = await d.get(urlPath).catch((err: Error) => ({ status: 0, body: err.message }));
      expect(r.status, failure(d, r)).toBe(0);
      expect(right.status, `GET ${urlPath} right after restart returned: ${right.body}`).toBe(200);
      await waitFor(async () => (await servedBy(d)) !== before && !alive(before) && !alive(node), 'the app to run in a new process and the old one to be gone', 30_000);
    });
    expect(load.failed).toEqual([]);
    expect(load.ok).toBeGreaterThan(0);
    expect((await d.run(['ping'])).stdout.trim()).toBe('pong');
  });

  it('reload returns once the app is ready again; no request fails', async () => {
    const d = o.app();
    await ensureRunning(d);
    const before = (await d.pid())!;
    const load = await underLoad(d, urlPath, o.check, async () => {
      const r = await d.run(['reload']);
      const right = await d.get(urlPath).catch((err: Error) => ({ status: 0, body: err.message }));
      expect(r.status, failure(d, r)).toBe(0);
      expect(right.status, `GET ${urlPath} right after reload returned: ${right.body}`).toBe(200);
      const after = await d.pid();
      expect(after, 'the node after reload').toBeDefined();
      if (after !== before) await waitFor(() => !alive(before), 'the node before reload to exit', 30_000);
    });
    expect(load.failed).toEqual([]);
    expect((await d.run(['ping'])).stdout.trim()).toBe('pong');
  });

  it('HUP replaces the node (a program is not reloaded in place); no request fails', async () => {
    const d = o.app();
    await ensureRunning(d);
    const before = (await d.pid())!;
    const load = await underLoad(d, urlPath, o.check, async () => {
      process.kill(before, 'SIGHUP');
      try {
        await waitFor(async () => {
          const p = await d.pid();
          return p !== undefined && p !== before && !alive(before);
        }, 'a new node and the old one gone', 60_000);
      } catch {
        throw new Error(`after HUP: node ${await d.pid()} (was ${before}, ${alive(before) ? 'still alive' : 'gone'})\n${d.logTail()}`);
      }
    });
    expect(load.failed).toEqual([]);
    expect((await d.get(urlPath)).status).toBe(200);
  });

  it('USR2 by hand under wrk: a new node on the same socket, TERM to the old one; 0 failed requests', async () => {
    const d = o.app();
    await ensureRunning(d);
    const old = (await d.pid())!;
    let fresh = 0;
    const { wrk } = await underWrk(d.port, urlPath, async () => {
      process.kill(old, 'SIGUSR2');
      await waitFor(async () => {
        const p = await d.statusPid();
        return p !== undefined && p !== old;
      }, 'the new node to answer on the control socket', 60_000);
      fresh = (await d.pid())!;
      expect(fresh).not.toBe(old);
      expect((await d.get(urlPath)).status).toBe(200);
      process.kill(old, 'SIGTERM');
      await waitFor(() => !alive(old), 'the old node to drain and exit', 60_000);
    });
    expect(wrkFailures(wrk), wrk.output).toBe('');
    expect(wrk.requests).toBeGreaterThan(100);
    expect(await d.pid()).toBe(fresh);
    expect(fs.existsSync(`${d.pidFile}.oldbin`)).toBe(false);
    expect((await d.get(urlPath)).status).toBe(200);
    expect((await d.run(['ping'])).stdout.trim()).toBe('pong');
  });

  it('stop returns once the node is gone; nothing answers on the port', async () => {
    const d = o.app();
    await ensureRunning(d);
    const pid = (await d.pid())!;
    const r = await d.run(['stop']);
    expect(r.status, failure(d, r)).toBe(0);
    expect(alive(pid)).toBe(false);
    expect((await d.run(['ping'])).status).toBe(1);
    await expect(d.get(urlPath)).rejects.toThrow(/ECONNREFUSED/);
  });
}

/** The tarball: one runtime, the launcher, lib/ and releases/; no run state, no cookie. */
function tarballTest(prep: () => Prepared, runtime: string = process.versions.node): void {
  it(`the tarball holds bin/, lib/, releases/ and one runtime (node-${runtime}), no run state`, () => {
    const p = prep();
    const top = [...new Set(p.listing.map((f) => f.replace(/^\.\//, '').split('/')[0]!).filter(Boolean))].sort();
    expect(top).toEqual(['bin', 'lib', `node-${runtime}`, 'releases']);
    expect(p.listing.filter((f) => /COOKIE|^(\.\/)?(tmp|log)\//.test(f))).toEqual([]);
  });
}

/** logrotate's way (rename, then reopen_logs): new lines land in the new file, none lost. */
function reopenLogsTest(app: () => Deployed): void {
  it('reopen_logs after a rename of console.log: new lines land in the new file, none lost', async () => {
    const d = app();
    await ensureRunning(d);
    const pid = (await d.pid())!;
    const log = d.logFile;
    const rotated = `${log}.rotated`;
    await waitFor(() => fs.existsSync(log) && /"msg":"tick"/.test(fs.readFileSync(log, 'utf8')), 'tick lines in console.log', 10_000);
    fs.renameSync(log, rotated);
    const r = await d.run(['reopen_logs']);
    expect(r.status, failure(d, r)).toBe(0);
    const marker = `/after-reopen-${Date.now()}`;
    expect((await d.get(marker)).status).toBe(200);
    let landed = false;
    try {
      await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes(marker), 'the request line in the new console.log', 10_000);
      landed = true;
    } catch {
      // reported below, with where it went
    }
    const old = fs.readFileSync(rotated, 'utf8');
    const now = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    expect(landed, `the line logged after reopen_logs is ${old.includes(marker) ? 'in the renamed file' : 'nowhere'}; the new console.log has ${now.length} bytes`).toBe(true);
    expect(old.includes(marker)).toBe(false);
    // Every tick of this node, 1..n with no gap, across the renamed and the new file.
    const ticks = (text: string) => [...text.matchAll(/"pid":(\d+),"hostname":"[^"]*","tick":(\d+)/g)].filter((m) => Number(m[1]) === pid).map((m) => Number(m[2]));
    expect(ticks(now).length, 'ticks in the new file').toBeGreaterThan(0);
    const all = [...new Set([...ticks(old), ...ticks(now)])].sort((x, y) => x - y);
    expect(all.length, 'tick lines lost').toBe(all.at(-1));
  });
}

const json = (body: string) => JSON.parse(body) as Record<string, any>;
const appDir = (d: Deployed, name: string) => path.join(d.root, 'lib', `${name}-1.0.0`);

// --- The corpus ---------------------------------------------------------------------------------

describe.skipIf(!REGISTRY.reachable)('the corpus: real npm packages, deployed from an unpacked tarball', () => {
  beforeAll((suite) => {
    const logDir = tempDir('noderel-corpus-logs-');
    // Every app whose tests run (all, unless -t picks some), at once: the installs in parallel,
    // the addon build (minutes of C++) beside the others, the others one `noderel tar` at a time.
    for (const child of suite.tasks) {
      const spec = specOfSuite.get(child.name);
      if (!spec || !runs(child)) continue;
      const p = prepare(spec, spec === SQLITE ? { buildLog: path.join(logDir.dir, `${spec.label}-build.log`), ownLane: true } : {});
      p.catch(() => undefined); // reported by the app's own beforeAll
      preparations.set(spec.label, p);
    }
    return () => logDir.cleanup();
  });
  afterAll(async () => {
    for (const d of deployed) d.cleanup();
    await Promise.allSettled(preparations.values());
    removeTempDirs();
  }, 120_000);

  describe('express 5, CommonJS, listening when it is the main module', () => {
    const { app, prep } = deploy(EXPRESS);
    const check = (b: string) => (json(b).app === 'express' ? undefined : `not express: ${b}`);
    tarballTest(prep);
    it('ships production dependencies only', () => {
      const files = prep().listing;
      expect(files).toContain('lib/corpus-express-1.0.0/node_modules/express/package.json');
      expect(files.filter((f) => f.includes('/is-number/'))).toEqual([]);
    });
    startTest({ app, check });
    it('runs as under `node app.js`: the main module, in its own directory, on the bundled runtime, with its dependencies from the release', async () => {
      const d = app();
      const a = json((await d.get('/')).body);
      const dir = appDir(d, 'corpus-express');
      expect(a.main).toBe(true);
      expect(a.filename).toBe(path.join(dir, 'app.js'));
      expect(a.cwd).toBe(dir);
      expect(a.argv1).toBe(a.filename);
      expect(a.args).toEqual([]);
      expect(a.execPath).toBe(path.join(d.root, `node-${process.versions.node}`, 'bin', 'node'));
      expect(a.express).toBe(path.join(dir, 'node_modules', 'express', 'index.js'));
    });
    operationTests({ app, check, pidOf: (b) => json(b).pid });
  });

  describe('fastify 5, ESM, top-level await app.listen()', () => {
    const { app, prep } = deploy(FASTIFY);
    const check = (b: string) => (json(b).app === 'fastify' ? undefined : `not fastify: ${b}`);
    tarballTest(prep);
    startTest({ app, check });
    it('runs as under `node server.js`: process.argv[1] is the entry (the ESM main-module test), in its own directory, fastify from the release', async () => {
      const d = app();
      const a = json((await d.get('/')).body);
      const dir = appDir(d, 'corpus-fastify');
      expect(a.filename).toBe(path.join(dir, 'server.js'));
      expect(a.main).toBe(true);
      expect(a.cwd).toBe(dir);
      expect(a.args).toEqual([]);
      expect(String(a.fastify)).toMatch(new RegExp(`^file://${dir}/node_modules/fastify/`));
    });
    operationTests({ app, check, pidOf: (b) => json(b).pid });
  });

  describe("http-server's own bin as the entry, with args", () => {
    const { app, prep } = deploy(STATIC, { portVar: 'STATIC_PORT' });
    const check = (b: string) => (b.includes('corpus static index') ? undefined : `not public/index.html: ${b.slice(0, 200)}`);
    tarballTest(prep);
    startTest({ app, check });
    it("serves the app's public/ (args: [public, -p, ${STATIC_PORT}], run in the app's directory)", async () => {
      const d = app();
      expect((await d.get('/about.txt')).body).toBe('served from public/\n');
    });
    it('serves nothing of the release root, though the launcher was run from it', async () => {
      const d = app();
      expect(fs.existsSync(path.join(d.root, 'releases', 'COOKIE'))).toBe(true);
      for (const p of ['/releases/COOKIE', '/releases/start.data', `/bin/${d.name}`, '/lib/']) {
        expect((await d.get(p)).status, `GET ${p}`).toBe(404);
      }
    });
    operationTests({ app, check });
  });

  describe('an npm workspaces monorepo (api -> lib + express), built from its root', () => {
    const { app, prep } = deploy(WORKSPACES);
    const check = (b: string) => (json(b).greeting === 'hello, corpus (colors: function)' ? undefined : `unexpected: ${b}`);
    tarballTest(prep);
    it('ships the workspace packages and their registry dependencies, not the root devDependencies', () => {
      // Wherever init put the app (the root, or the api workspace as its own app): under lib/.
      const files = prep().listing.filter((f) => /^lib\/(?!noderel-)/.test(f));
      expect(files.filter((f) => /(^|\/)node_modules\/express\/package\.json$/.test(f)).length, 'express').toBeGreaterThan(0);
      expect(files.filter((f) => /(^|\/)node_modules\/picocolors\/package\.json$/.test(f)).length, 'picocolors (a dependency of the lib workspace)').toBeGreaterThan(0);
      expect(files.filter((f) => /(packages\/lib|node_modules\/@corpus\/lib)\/index\.js$/.test(f)).length, '@corpus/lib').toBeGreaterThan(0);
      expect(files.filter((f) => f.includes('/is-number/'))).toEqual([]);
    });
    startTest({ app, check });
    it("runs in its app's directory under lib/, with its dependencies from the release", async () => {
      const d = app();
      const a = json((await d.get('/')).body);
      expect(String(a.cwd).startsWith(path.join(d.root, 'lib') + path.sep), a.cwd).toBe(true);
    });
    operationTests({ app, check, pidOf: (b) => json(b).pid });
  });

  describe('pino logging heavily to stdout, ready by an output pattern', () => {
    const { app, prep } = deploy(PINO);
    const check = (b: string) => (json(b).app === 'pino' ? undefined : `not pino: ${b}`);
    tarballTest(prep);
    startTest({ app, check });
    it(`readiness matched after ${BOOT_LINES} lines of boot logging, all of them in console.log`, () => {
      const text = fs.readFileSync(app().logFile, 'utf8');
      expect(text.match(/"msg":"warming up"/g)?.length ?? 0).toBe(BOOT_LINES);
      expect(text).toMatch(/"msg":"server ready on port \d+"/);
    });
    reopenLogsTest(app);
    operationTests({ app, check, pidOf: (b) => json(b).pid });
  });

  describe('pino writing to fd 1 itself (pino.destination(1)), as a `node app.js > log` user may', () => {
    const { app } = deploy(PINO_FD);
    const check = (b: string) => (json(b).app === 'pino' ? undefined : `not pino: ${b}`);
    startTest({ app, check });
    // What goes straight to fd 1 keeps going to the file fd 1 was opened on (no process can
    // re-point another's fds): a rename plus reopen_logs cannot move it, logrotate's
    // copytruncate does (the launcher opens console.log for appending). The README says so.
    it('logrotate copytruncate: lines written to fd 1 after the truncate land in console.log', async () => {
      const d = app();
      await ensureRunning(d);
      const log = d.logFile;
      await waitFor(() => fs.existsSync(log) && /"msg":"tick"/.test(fs.readFileSync(log, 'utf8')), 'tick lines in console.log', 10_000);
      fs.copyFileSync(log, `${log}.1`);
      fs.truncateSync(log, 0);
      const marker = `/after-truncate-${Date.now()}`;
      expect((await d.get(marker)).status).toBe(200);
      await waitFor(() => fs.readFileSync(log, 'utf8').includes(marker), 'the request line in the truncated console.log', 10_000);
      // appended from the start of the file, not written at the old offset (a sparse file as big as before)
      expect(fs.statSync(log).size).toBeLessThan(fs.statSync(`${log}.1`).size);
    });
    it('stop', async () => {
      const d = app();
      await ensureRunning(d);
      const r = await d.run(['stop']);
      expect(r.status, failure(d, r)).toBe(0);
    });
  });

  describe(`better-sqlite3 (native addon) rebuilt for a pinned Node ${ADDON_RUNTIME}`, () => {
    const { app, prep } = deploy(SQLITE);
    const check = (b: string) => {
      const a = json(b);
      return a.node === `v${ADDON_RUNTIME}` && a.kinds === 3 && a.qty === 15 ? undefined : `unexpected: ${b}`;
    };
    tarballTest(prep, ADDON_RUNTIME);
    it('ships the addon built for the pinned runtime and none of its build leftovers', () => {
      const files = prep().listing;
      expect(files.filter((f) => f.endsWith('/better_sqlite3.node')).length).toBe(1);
      expect(files.filter((f) => /\.(o|a|obj|lib|tlog|pdb)$|\/obj\.target\/|\/\.deps\//.test(f))).toEqual([]);
    });
    startTest({ app, check });
    it('serves a query of an in-memory database, on the pinned runtime', async () => {
      const a = json((await app().get('/')).body);
      expect(a).toMatchObject({ node: `v${ADDON_RUNTIME}`, kinds: 3, qty: 15 });
      expect(a.sqlite).toMatch(/^3\.\d+/);
    });
    operationTests({ app, check, pidOf: (b) => json(b).pid });
    it('a build for another CPU (linux-arm64) is refused, naming the addon, its arch and the target', async () => {
      const p = prep();
      const out = path.join(p.project, '_rel-arm64');
      const r = await noderel(p.project, ['build', '--runtime', ADDON_RUNTIME, '--target', 'linux-arm64', '--rebuild-addons', '--output', out], { timeoutMs: 600_000 });
      expect(r.status, `${r.stdout}${r.stderr}`).not.toBe(0);
      expect(r.stderr).toMatch(/better.sqlite3/);
      expect(r.stderr).toMatch(/arm64/);
      expect(fs.existsSync(path.join(out, p.name, 'bin', p.name))).toBe(false);
    });
  });
});
