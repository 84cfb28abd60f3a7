// End to end: the node runtime (dist/node, shipped as lib/noderel-<vsn>/) boots a release
// directory assembled by hand here, as a real child process, the way `bin/<name> foreground`
// execs it. Covers app start (module and program apps, readiness, failures), config loading,
// the staged shutdown (docs/signals.md), the process title and `escript`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, freePorts } from '../helpers/ports.js';
import { spawnChild, useChildProcesses, type Child } from '../helpers/proc.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST_NODE = path.join(REPO, 'dist', 'runtime');
const NODEREL_VSN = '0.1.0';
const REL_VSN = '4.3.0';

useChildProcesses();

// ---------------------------------------------------------------------------------------------
// A release directory by hand: releases/<vsn>/{release.json,sys.config}, lib/noderel-<vsn>/ (the
// bundled runtime + {"type":"commonjs"}), lib/ecallmgr-4.3.0 and lib/crossbar-4.3.0 (the demo
// apps as they are in apps/), and fixture apps written from the strings below.

interface FixtureApp {
  readonly type: 'module' | 'program';
  readonly entry: string;
  readonly ready?: Record<string, unknown>;
  readonly start_timeout_ms?: number;
  /** Files of the app, relative to its directory; or `copy` a directory of the repo. */
  readonly files?: Record<string, string>;
  readonly copy?: string;
}

const DEMO_APPS: Record<string, FixtureApp> = {
  ecallmgr: { type: 'module', entry: 'src/app.js', copy: 'apps/ecallmgr' },
  crossbar: { type: 'module', entry: 'src/app.js', copy: 'apps/crossbar' },
};

const BOOM: FixtureApp = {
  type: 'module',
  entry: 'app.mjs',
  files: {
    'app.mjs': `export async function start(ctx) {
  ctx.log.info('boom starting');
  throw new Error('kaboom at start');
}
export async function stop() {}
`,
  },
};

/** Counts one piece of work that never ends, whatever the stage: only the 4th signal gets past it. */
const STUBBORN: FixtureApp = {
  type: 'module',
  entry: 'app.mjs',
  files: {
    'app.mjs': `export async function start(ctx) {
  ctx.lifecycle.track();
  return {};
}
export async function stop() {}
`,
  },
};

/** CommonJS program, ready when its port answers (it starts listening a little late on purpose). */
const PROG_CJS: FixtureApp = {
  type: 'program',
  entry: 'main.cjs',
  files: {
    'main.cjs': `const http = require('node:http');
console.log('prog_cjs main=' + (require.main === module) + ' argv1=' + process.argv[1]);
setTimeout(() => {
  http.createServer((req, res) => res.end('cjs')).listen(Number(process.env.PROG_CJS_PORT), '127.0.0.1', () => {
    console.log('prog_cjs listening');
  });
}, 300);
`,
  },
};

/** ES module program (.js under "type": "module"), ready when its output says so, in two writes. */
const PROG_ESM: FixtureApp = {
  type: 'program',
  entry: 'src/main.js',
  ready: { type: 'output', pattern: 'prog_esm ready on \\d+' },
  files: {
    'package.json': '{"name":"prog_esm","version":"1.0.0","type":"module"}\n',
    'src/main.js': `import { fileURLToPath } from 'node:url';
console.log('prog_esm main=' + (process.argv[1] === fileURLToPath(import.meta.url)));
setTimeout(() => {
  process.stdout.write('prog_esm ready ');
  process.stdout.write('on 42\\n');
}, 300);
`,
  },
};

const PROG_NEVER: FixtureApp = {
  type: 'program',
  entry: 'main.mjs',
  ready: { type: 'output', pattern: 'this is never printed' },
  start_timeout_ms: 1_500,
  files: { 'main.mjs': "console.log('prog_never running');\n" },
};

const PROG_CRASH: FixtureApp = {
  type: 'program',
  entry: 'main.mjs',
  ready: { type: 'output', pattern: 'crash ready' },
  files: {
    'main.mjs': `await new Promise((resolve) => setTimeout(resolve, 50));
throw new Error('esm crash at load');
`,
  },
};

interface ReleaseOptions {
  readonly apps: Record<string, FixtureApp>;
  readonly nodeTypes: Record<string, { apps: string[]; process_name?: string }>;
  readonly defaultNodeType?: string;
  readonly sysConfig?: unknown;
  readonly sysConfigSrc?: boolean;
}

const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `noderel-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

function makeRelease(opts: ReleaseOptions): string {
  const root = tempDir('boot');
  const write = (rel: string, text: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  fs.cpSync(DIST_NODE, path.join(root, 'lib', `noderel-${NODEREL_VSN}`), { recursive: true });
  write(`lib/noderel-${NODEREL_VSN}/package.json`, '{"type":"commonjs"}\n');
  const apps: Record<string, unknown> = {};
  for (const [name, app] of Object.entries(opts.apps)) {
    const dir = `lib/${name}-${REL_VSN}`;
    if (app.copy) fs.cpSync(path.join(REPO, app.copy), path.join(root, dir), { recursive: true });
    for (const [file, text] of Object.entries(app.files ?? {})) write(`${dir}/${file}`, text);
    apps[name] = {
      version: REL_VSN,
      dir,
      type: app.type,
      entry: app.entry,
      ready: app.ready ?? { type: 'at_once' },
      start_timeout_ms: app.start_timeout_ms ?? 30_000,
    };
  }
  const nodeTypes = Object.fromEntries(
    Object.entries(opts.nodeTypes).map(([name, t]) => [name, { apps: t.apps, workers: 0, process_name: t.process_name ?? name }]),
  );
  const manifest = {
    name: 'kazoo',
    version: REL_VSN,
    node_version: process.versions.node,
    noderel_version: NODEREL_VSN,
    default_node_type: opts.defaultNodeType ?? Object.keys(opts.nodeTypes)[0],
    sys_config_src: opts.sysConfigSrc ?? false,
    apps,
    node_types: nodeTypes,
  };
  write(`releases/${REL_VSN}/release.json`, JSON.stringify(manifest, null, 2));
  write(`releases/${REL_VSN}/sys.config`, JSON.stringify(opts.sysConfig ?? {}, null, 2));
  write('releases/start.data', `${process.versions.node} ${REL_VSN}\n`);
  return root;
}

/** The environment `bin/kazoo` would give the node, on a clean copy of ours. */
function launchEnv(root: string, nodeType: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('NODEREL_') || key.endsWith('_APP_CONFIG') || key.endsWith('_PORT') || key === 'NODE_OPTIONS') delete env[key];
  }
  Object.assign(env, {
    NODEREL_ROOT: root,
    NODEREL_REL_NAME: 'kazoo',
    NODEREL_REL_VSN: REL_VSN,
    NODEREL_NODE_TYPE: nodeType,
    NODEREL_NODE_NAME: `${nodeType}@testhost`,
    NODEREL_LOG_LEVEL: 'debug',
    RELEASE_TMP: path.join(root, 'tmp'),
    RUNNER_LOG_DIR: path.join(root, 'log'),
  });
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function bootNode(root: string, nodeType: string, extra: Record<string, string | undefined> = {}): Child {
  return spawnChild(process.execPath, [path.join(root, 'lib', `noderel-${NODEREL_VSN}`, 'boot.js'), 'foreground'], {
    cwd: root,
    env: launchEnv(root, nodeType, extra),
    label: `node ${nodeType}`,
  });
}

const READY = /node \S+ ready \(kazoo 4\.3\.0, apps: [^)]*\)/;

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
}

/**
 * One GET on a fresh connection (no pooling, so a closing server cannot surprise a reused
 * socket). The request asks for keep-alive, so a `Connection: close` answer is the server's choice.
 */
function get(port: number, urlPath: string): Promise<Reply> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return new Promise<Reply>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim(), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
  }).finally(() => agent.destroy());
}

/** A raw keep-alive connection that has served one request and is now idle. */
async function idleKeepAliveSocket(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setEncoding('utf8');
  let text = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (c: string) => {
      text += c;
      if (/\r\n\r\n(ok\n|3\r\nok\n\r\n0\r\n\r\n)$/.test(text)) resolve(); // plain or chunked
    });
    socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
  });
  expect(text).toMatch(/^HTTP\/1\.1 200 .*\r\n[\s\S]*Connection: keep-alive/i);
  socket.on('error', () => {}); // a reset when the server closes it is fine
  return socket;
}

/**
 * Index of `pattern` in the output; -1 when absent. Orders events written to the same stream
 * only: stdout and stderr are two pipes and may arrive in either order (use `loggedAt` then).
 */
function at(node: Child, pattern: RegExp): number {
  return node.output.search(pattern);
}

/** The time stamp (ms) of the first log line matching `pattern`, to order lines across streams. */
function loggedAt(node: Child, pattern: RegExp): number {
  const line = node.output.split('\n').find((l) => pattern.test(l));
  if (!line) throw new Error(`no log line matches ${pattern}`);
  return Date.parse(line.split(' ')[0]!);
}

let shared: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(DIST_NODE, 'boot.js'))) throw new Error(`${DIST_NODE}/boot.js missing: build first (npm run build)`);
  shared = makeRelease({
    apps: { ...DEMO_APPS, boom: BOOM, stubborn: STUBBORN },
    nodeTypes: {
      kazoo_apps: { apps: ['crossbar'] },
      ecallmgr: { apps: ['ecallmgr'], process_name: 'kazoo_ecallmgr' },
      long_title: { apps: ['ecallmgr'], process_name: 'kazoo_ecallmgr_node_main' },
      broken: { apps: ['ecallmgr', 'boom'] },
      stubborn: { apps: ['ecallmgr', 'stubborn'] },
    },
    // Overridden by ECALLMGR_PORT / CROSSBAR_PORT or an app.config in every test.
    sysConfig: { ecallmgr: { ip: '127.0.0.1', port: 1 }, crossbar: { ip: '127.0.0.1' } },
  });
});

afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('boot.js foreground: starting', () => {
  it('starts the apps, logs each and the ready line, and serves calls', async () => {
    const port = await freePort();
    const node = bootNode(shared, 'ecallmgr', { ECALLMGR_PORT: String(port) });
    await node.waitForOutput(READY);
    expect(node.output).toMatch(/ info \[ecallmgr@testhost\] app ecallmgr started\n/);
    expect(node.output).toMatch(/node ecallmgr@testhost ready \(kazoo 4\.3\.0, apps: ecallmgr\)/);
    expect(node.output).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info \[ecallmgr\] listening on 127\.0\.0\.1:\d+$/m);

    expect(await get(port, '/health')).toMatchObject({ status: 200, body: 'ok' });
    const call = await get(port, '/call?duration=50');
    expect(call).toMatchObject({ status: 200, body: 'completed' });
    expect(call.headers.connection).toBe('keep-alive');

    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
    expect(node.output).toMatch(/stage stopping/);
    expect(node.output).toMatch(/app ecallmgr stopped/);
  });

  it('crossbar answers with the node, release, version and uptime', async () => {
    const port = await freePort();
    const node = bootNode(shared, 'kazoo_apps', { CROSSBAR_PORT: String(port) });
    await node.waitForOutput(READY);
    const res = await get(port, '/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    const body = JSON.parse(res.body) as Record<string, unknown>;
    expect(body).toMatchObject({ node: 'kazoo_apps@testhost', release: 'kazoo', version: '4.3.0' });
    expect(body.uptime).toEqual(expect.any(Number));
    expect(await get(port, '/health')).toMatchObject({ status: 200, body: 'ok' });
    node.signal('SIGINT');
    expect((await node.waitForExit()).code).toBe(0);
  });

  // On Linux, process.title sets both the task name (/proc/<pid>/comm: what `pgrep -x`, `killall`
  // and `ps -o comm` match), cut to 15 bytes by the kernel, and the command line
  // (/proc/<pid>/cmdline: `ps -o args`, `pgrep -f`), whole.
  it.runIf(process.platform === 'linux')('sets process.title to the process name: comm, cmdline and pgrep -x see it', async () => {
    const [port, port2] = await freePorts(2);
    const node = bootNode(shared, 'ecallmgr', { ECALLMGR_PORT: String(port) });
    const long = bootNode(shared, 'long_title', { ECALLMGR_PORT: String(port2) });
    await Promise.all([node.waitForOutput(READY), long.waitForOutput(READY)]);
    const comm = (pid: number): string => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const args = (pid: number): string => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '');

    expect(comm(node.pid)).toBe('kazoo_ecallmgr');
    expect(args(node.pid)).toBe('kazoo_ecallmgr');
    const pgrep = spawnSync('pgrep', ['-x', 'kazoo_ecallmgr'], { encoding: 'utf8' });
    if (!pgrep.error) expect(pgrep.stdout.split('\n')).toContain(String(node.pid));

    expect(comm(long.pid)).toBe('kazoo_ecallmgr_');
    expect(args(long.pid)).toBe('kazoo_ecallmgr_node_main');

    node.signal('SIGTERM');
    long.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
    expect((await long.waitForExit()).code).toBe(0);
  });

  it('a module app that throws in start: logged with its name, started apps stopped in reverse, exit 1', async () => {
    const port = await freePort();
    const node = bootNode(shared, 'broken', { ECALLMGR_PORT: String(port) });
    const status = await node.waitForExit();
    expect(status.code).toBe(1);
    expect(node.stderr).toMatch(/error \[broken@testhost\] app boom failed to start: Error: kaboom at start/);
    expect(node.output).not.toMatch(READY);
    expect(loggedAt(node, /app ecallmgr stopped/)).toBeGreaterThanOrEqual(loggedAt(node, /app boom failed to start/));
  });

  it('a listen error (EADDRINUSE) fails the start of ecallmgr, exit 1', async () => {
    const port = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const node = bootNode(shared, 'ecallmgr', { ECALLMGR_PORT: String(port) });
      expect((await node.waitForExit()).code).toBe(1);
      expect(node.stderr).toMatch(/app ecallmgr failed to start: .*EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('an unknown node type is one line listing the known ones, exit 1', async () => {
    const node = bootNode(shared, 'nope');
    expect((await node.waitForExit()).code).toBe(1);
    expect(node.stderr).toMatch(/unknown node type "nope"; known: broken, ecallmgr, kazoo_apps, long_title, stubborn/);
    expect(node.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('boot.js foreground: program apps', () => {
  it('CJS and ESM programs run as the main module; ready by port and by output pattern', async () => {
    const progPort = await freePort();
    const root = makeRelease({
      apps: { prog_cjs: { ...PROG_CJS, ready: { type: 'port', port: progPort } }, prog_esm: PROG_ESM },
      nodeTypes: { programs: { apps: ['prog_cjs', 'prog_esm'] } },
    });
    const node = bootNode(root, 'programs', { PROG_CJS_PORT: String(progPort) });
    await node.waitForOutput(READY);
    const cjsEntry = path.join(root, 'lib', `prog_cjs-${REL_VSN}`, 'main.cjs');
    expect(node.stdout).toContain(`prog_cjs main=true argv1=${cjsEntry}\n`);
    expect(node.stdout).toContain('prog_esm main=true\n');
    // Ready only once the port answered / the pattern was printed (output passed through as is).
    expect(at(node, /app prog_cjs started/)).toBeGreaterThan(at(node, /prog_cjs listening/));
    expect(node.stdout).toContain('\nprog_esm ready on 42\n');
    expect(at(node, /app prog_esm started/)).toBeGreaterThan(at(node, /prog_esm ready on 42/));
    expect(await get(progPort, '/')).toMatchObject({ status: 200, body: 'cjs' });
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
    expect(node.output).toMatch(/app prog_esm stopped[\s\S]*app prog_cjs stopped/);
  });

  it('a program not ready within start_timeout_ms fails the start, exit 1', async () => {
    const root = makeRelease({ apps: { prog_never: PROG_NEVER }, nodeTypes: { slow: { apps: ['prog_never'] } } });
    const node = bootNode(root, 'slow');
    expect((await node.waitForExit()).code).toBe(1);
    expect(node.stdout).toContain('prog_never running');
    expect(node.stderr).toMatch(/app prog_never failed to start: not ready within 1500 ms/);
  });

  it('an ES module program that throws while loading fails its start and stops the others, exit 1', async () => {
    const port = await freePort();
    const root = makeRelease({
      apps: { ecallmgr: DEMO_APPS.ecallmgr!, prog_crash: PROG_CRASH },
      nodeTypes: { crashy: { apps: ['ecallmgr', 'prog_crash'] } },
      sysConfig: { ecallmgr: { ip: '127.0.0.1' } },
    });
    const node = bootNode(root, 'crashy', { ECALLMGR_PORT: String(port) });
    expect((await node.waitForExit()).code).toBe(1);
    expect(node.stderr).toMatch(/app prog_crash failed to start: Error: esm crash at load/);
    expect(loggedAt(node, /app ecallmgr stopped/)).toBeGreaterThanOrEqual(loggedAt(node, /app prog_crash failed to start/));
  });
});

describe('boot.js foreground: config', () => {
  it('sys.config from a sys.config.src: ${VAR} and ${VAR:-default} substituted from the environment', async () => {
    const port = await freePort();
    const root = makeRelease({
      apps: { ecallmgr: DEMO_APPS.ecallmgr! },
      nodeTypes: { ecallmgr: { apps: ['ecallmgr'] } },
      sysConfigSrc: true,
      sysConfig: { ecallmgr: { ip: '${TEST_ECALLMGR_IP:-127.0.0.1}', port: '${TEST_ECALLMGR_LISTEN}' } },
    });
    const node = bootNode(root, 'ecallmgr', { TEST_ECALLMGR_LISTEN: String(port), TEST_ECALLMGR_IP: undefined });
    await node.waitForOutput(READY);
    expect(node.output).toContain(`listening on 127.0.0.1:${port}`);
    expect(await get(port, '/health')).toMatchObject({ status: 200 });
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);

    const unset = bootNode(root, 'ecallmgr', { TEST_ECALLMGR_LISTEN: undefined });
    expect((await unset.waitForExit()).code).toBe(1);
    expect(unset.stderr).toMatch(/sys\.config: environment variable not set and no default: \$\{TEST_ECALLMGR_LISTEN\} at ecallmgr\.port/);
    expect(unset.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('$KAZOO_APP_CONFIG overrides sys.config, merged per app key', async () => {
    const port = await freePort();
    const dir = tempDir('appconfig');
    const file = path.join(dir, 'app.config');
    fs.writeFileSync(file, JSON.stringify({ ecallmgr: { port } }));
    const node = bootNode(shared, 'ecallmgr', { KAZOO_APP_CONFIG: file });
    await node.waitForOutput(READY);
    // port from app.config, ip (127.0.0.1) still from sys.config
    expect(node.output).toContain(`listening on 127.0.0.1:${port}`);
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);

    const missing = bootNode(shared, 'ecallmgr', { KAZOO_APP_CONFIG: path.join(dir, 'nope.config') });
    expect((await missing.waitForExit()).code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.config: no such file \(named by KAZOO_APP_CONFIG\)/);
  });
});

describe('boot.js foreground: staged INT/TERM and QUIT', () => {
  // The first call is held long enough that everything else happens while it is in flight.
  const HELD_MS = 4_000;

  async function nodeWithCallInFlight(durationMs: number, nodeType = 'ecallmgr'): Promise<{ node: Child; port: number; held: Promise<Reply> }> {
    const port = await freePort();
    const node = bootNode(shared, nodeType, { ECALLMGR_PORT: String(port) });
    await node.waitForOutput(READY);
    const held = get(port, `/call?duration=${durationMs}`);
    held.catch(() => {});
    await node.waitForOutput(/call 1 started/);
    return { node, port, held };
  }

  it('1st TERM: draining, new calls still taken; exits 0 once both calls finished', async () => {
    const { node, port, held } = await nodeWithCallInFlight(HELD_MS);
    let heldAnswered = false;
    void held.then(() => (heldAnswered = true));
    const idle = await idleKeepAliveSocket(port);
    const idleClosed = new Promise((resolve) => idle.once('close', resolve));
    node.signal('SIGTERM');
    await node.waitForOutput(/stage draining, 1 in flight/);
    // Idle keep-alive connections are closed on draining (long before the server's 5 s keep-alive timeout).
    await idleClosed;
    expect(heldAnswered).toBe(false);
    const second = await get(port, '/call?duration=100');
    expect(second).toMatchObject({ status: 200, body: 'completed' });
    expect(second.headers.connection).toBe('close');
    expect(node.exitStatus).toBeUndefined();
    expect(await held).toMatchObject({ status: 200, body: 'completed' });
    expect((await node.waitForExit()).code).toBe(0);
    expect(at(node, /call 2 completed/)).toBeLessThan(at(node, /call 1 completed/));
    expect(at(node, /stage stopping/)).toBeGreaterThan(at(node, /call 1 completed/));
  });

  it('2nd TERM: rejecting, new calls get 503; the call in flight completes; exit 0', async () => {
    const { node, port, held } = await nodeWithCallInFlight(HELD_MS);
    node.signal('SIGTERM');
    await node.waitForOutput(/stage draining/);
    node.signal('SIGTERM');
    await node.waitForOutput(/stage rejecting, 1 in flight/);
    expect(await get(port, '/call?duration=100')).toMatchObject({ status: 503, body: 'rejecting' });
    expect(await held).toMatchObject({ status: 200, body: 'completed' });
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('3rd TERM: hanging-up, the call in flight is answered "hangup"; exit 0', async () => {
    const { node, held } = await nodeWithCallInFlight(600_000);
    node.signal('SIGTERM');
    await node.waitForOutput(/stage draining/);
    node.signal('SIGTERM');
    await node.waitForOutput(/stage rejecting/);
    node.signal('SIGTERM');
    await node.waitForOutput(/stage hanging-up/);
    expect(await held).toMatchObject({ status: 200, body: 'hangup' });
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('4th TERM: exits at once with 1, whatever is still in flight', async () => {
    // `stubborn` holds work that never ends, so only the 4th signal ends the node.
    const { node, held } = await nodeWithCallInFlight(600_000, 'stubborn');
    for (const stage of ['draining', 'rejecting', 'hanging-up']) {
      node.signal('SIGTERM');
      await node.waitForOutput(new RegExp(`stage ${stage}`));
    }
    expect(await held).toMatchObject({ status: 200, body: 'hangup' });
    expect(node.exitStatus).toBeUndefined();
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(1);
    expect(node.output).toMatch(/exiting now with 1 in flight/);
    expect(node.output).not.toMatch(/stage stopping/);
  });

  it('QUIT: straight to rejecting (new calls 503), the call in flight completes; exit 0', async () => {
    const { node, port, held } = await nodeWithCallInFlight(HELD_MS);
    node.signal('SIGQUIT');
    await node.waitForOutput(/stage rejecting, 1 in flight/);
    expect(await get(port, '/call?duration=100')).toMatchObject({ status: 503, body: 'rejecting' });
    expect(await get(port, '/health')).toMatchObject({ status: 503, body: 'rejecting' });
    expect(await held).toMatchObject({ status: 200, body: 'completed' });
    expect((await node.waitForExit()).code).toBe(0);
    expect(node.output).not.toMatch(/stage draining/);
  });

  it('TERM with nothing in flight stops at once, exit 0', async () => {
    const port = await freePort();
    const node = bootNode(shared, 'ecallmgr', { ECALLMGR_PORT: String(port) });
    await node.waitForOutput(READY);
    node.signal('SIGINT');
    expect((await node.waitForExit()).code).toBe(0);
    expect(node.output).toMatch(/stage draining, 0 in flight[\s\S]*stage stopping[\s\S]*node ecallmgr@testhost stopped/);
  });
});

describe('boot.js escript', () => {
  it('runs a CommonJS script as the main module with its args; its exit code is the exit code', async () => {
    const dir = tempDir('escript');
    const script = path.join(dir, 'task.cjs');
    fs.writeFileSync(
      script,
      `console.log('main=' + (require.main === module) + ' args=' + process.argv.slice(2).join(',') + ' root=' + process.env.NODEREL_ROOT);
process.exitCode = 3;
`,
    );
    const run = spawnChild(process.execPath, [path.join(shared, 'lib', `noderel-${NODEREL_VSN}`, 'boot.js'), 'escript', script, 'a', 'b c'], {
      env: launchEnv(shared, 'ecallmgr'),
      label: 'escript',
    });
    expect((await run.waitForExit()).code).toBe(3);
    expect(run.stdout).toBe(`main=true args=a,b c root=${shared}\n`);
  });

  it('runs an ES module script as the main module', async () => {
    const dir = tempDir('escript');
    const script = path.join(dir, 'task.mjs');
    fs.writeFileSync(script, "import { fileURLToPath } from 'node:url';\nconsole.log('main=' + (process.argv[1] === fileURLToPath(import.meta.url)));\n");
    const run = spawnChild(process.execPath, [path.join(shared, 'lib', `noderel-${NODEREL_VSN}`, 'boot.js'), 'escript', script], {
      env: launchEnv(shared, 'ecallmgr'),
      label: 'escript',
    });
    expect((await run.waitForExit()).code).toBe(0);
    expect(run.stdout).toBe('main=true\n');
  });
});

// freePorts is part of the helpers' API; make sure it gives distinct ports.
describe('helpers', () => {
  it('freePorts gives distinct ports', async () => {
    const ports = await freePorts(3);
    expect(new Set(ports).size).toBe(3);
  });
});
