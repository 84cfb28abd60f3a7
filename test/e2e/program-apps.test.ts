/**
 * Program apps (plain Node programs made into releases by `noderel init`) are first-class:
 * `restart`, `reload` and HUP replace a single-process node the way USR2 does (a program cannot
 * be unloaded from its process), return once the new node is ready, and fail no request; a
 * program runs in its own directory in the release with its configured `args` (`${VAR}`
 * substituted at launch) plus the operator's `-- ARGS`, never in the operator's directory.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noderel, tempDir, writeFiles } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { spawnChild, useChildProcesses } from '../helpers/proc.js';
import { alive, cleanupSandboxes, httpGet, sandbox, waitFor, type Sandbox } from '../helpers/sandbox.js';

useChildProcesses();
const cleanups: (() => void)[] = [];
afterAll(() => {
  cleanupSandboxes();
  while (cleanups.length) cleanups.pop()!();
});

// A program that knows nothing of noderel: it answers with its pid, cwd and argv.
const SERVER = `const http = require('node:http');
if (require.main !== module) throw new Error('not the main module');
const port = Number(process.env.PORT);
http.createServer((req, res) => {
  if (req.url === '/slow') return setTimeout(() => res.end('slow done'), 300);
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid, cwd: process.cwd(), argv: process.argv.slice(2) }));
}).listen(port, '127.0.0.1', () => console.log('listening on ' + port));
`;

interface Built {
  dir: string;
  rel: string;
  bin: string;
  port: number;
}

/** `noderel init` on a plain program, with `edit` applied to its relx.config, then a build. */
async function buildProgram(name: string, edit: (config: string) => string = (c) => c): Promise<Built> {
  const t = tempDir(`noderel-${name}-`);
  cleanups.push(t.cleanup);
  writeFiles(t.dir, {
    'package.json': JSON.stringify({ name, version: '1.0.0', main: 'server.js' }),
    'server.js': SERVER,
    'public/index.html': 'hello from public\n',
  });
  const port = await freePort();
  const init = noderel(t.dir, ['init', '--port', String(port)]);
  expect(init.code, init.stderr).toBe(0);
  const configFile = path.join(t.dir, 'rel', 'relx.config');
  fs.writeFileSync(configFile, edit(fs.readFileSync(configFile, 'utf8')));
  const build = noderel(t.dir, ['build', '-q']);
  expect(build.code, build.stderr).toBe(0);
  const rel = path.join(t.dir, '_rel', name);
  return { dir: t.dir, rel, bin: path.join(rel, 'bin', name), port };
}

type Answer = { pid: number; cwd: string; argv: string[] };
const ask = async (port: number): Promise<Answer> => JSON.parse((await httpGet(port)).body) as Answer;

/**
 * Requests on fresh and keep-alive connections until `stop()`, counting failures (an error or
 * a status other than 200): what a client sees while the node is replaced.
 */
function load(port: number): { stop: () => Promise<{ ok: number; failed: string[]; pids: Set<number> }> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const pids = new Set<number>();
  const one = (useAgent: boolean, urlPath: string) =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: useAgent ? agent : false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => {
          if (res.statusCode === 200) {
            ok++;
            if (urlPath === '/') pids.add((JSON.parse(body) as Answer).pid);
          } else failed.push(`${urlPath}: HTTP ${res.statusCode}`);
          resolve();
        });
      });
      req.on('error', (err) => {
        failed.push(`${urlPath}: ${err.message}`);
        resolve();
      });
    });
  const loops = [
    (async () => { while (running) await one(true, '/'); })(),
    (async () => { while (running) await one(false, '/'); })(),
    (async () => { while (running) await one(true, '/slow'); })(),
  ];
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ok, failed, pids };
    },
  };
}

describe('restart, reload and HUP of a single-process node running a program', () => {
  let b: Built;
  let s: Sandbox;
  beforeAll(async () => {
    b = await buildProgram('plainweb');
    s = await sandbox(b.bin, 'plainweb', 'PORT');
    s.env.PORT = String(b.port);
    const start = s.run(['start']);
    expect(start.status, start.stderr).toBe(0);
  });

  it('restart replaces the node on the same socket, returns once it is ready, and fails no request', async () => {
    const before = s.pid()!;
    const traffic = load(b.port);
    await waitFor(async () => (await ask(b.port)).pid === before, 'the first node answering');
    const r = await s.runAsync(['restart']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^restarted plainweb: node plainweb@\S+ now runs as pid \d+/);
    // Ready when restart returns: the new node answers at once.
    const after = s.pid()!;
    expect(after).not.toBe(before);
    expect((await ask(b.port)).pid).toBe(after);
    await waitFor(() => !alive(before), 'the old node to drain and exit');
    const seen = await traffic.stop();
    expect(seen.failed).toEqual([]);
    expect(seen.ok).toBeGreaterThan(10);
    expect(s.run(['ping']).stdout.trim()).toBe('pong');
  });

  it('reload and HUP replace it the same way', async () => {
    const first = s.pid()!;
    const traffic = load(b.port);
    const r = await s.runAsync(['reload']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^reloaded plainweb/);
    const second = s.pid()!;
    expect(second).not.toBe(first);
    await waitFor(() => !alive(first), 'the node before reload to exit');
    process.kill(second, 'SIGHUP');
    await waitFor(() => { const p = s.pid(); return p !== undefined && p !== second && !alive(second); }, 'HUP to replace the node', 60_000);
    const seen = await traffic.stop();
    expect(seen.failed).toEqual([]);
    expect((await ask(b.port)).pid).toBe(s.pid());
  });

  it('runs in its own directory in the release, whatever the launcher was run from', async () => {
    const answer = await ask(b.port);
    expect(answer.cwd).toBe(path.join(b.rel, 'lib', 'plainweb-1.0.0'));
    expect(answer.argv).toEqual([]);
  });

  it('stop after a restart stops the node that serves', async () => {
    const pid = s.pid()!;
    expect(s.run(['stop']).status).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(s.run(['ping']).status).toBe(1);
  });
});

describe('program args, cwd and -- ARGS', () => {
  let b: Built;
  beforeAll(async () => {
    b = await buildProgram('argsweb', (c) =>
      c.replace(/entry: server\.js\n/, 'entry: server.js\n    args: [public, "--port=${PORT}", "${ARGS_MODE:-prod}"]\n    cwd: public\n'));
  });

  it('passes the configured args (substituted) in the configured cwd, and -- ARGS after them', async () => {
    const node = spawnChild(b.bin, ['foreground', '--', '--extra', 'x y'], { cwd: b.rel, env: { ...process.env, PORT: String(b.port), ARGS_MODE: 'debug' } });
    await node.waitForOutput(/node argsweb@\S+ ready/);
    const answer = await ask(b.port);
    expect(answer.cwd).toBe(path.join(b.rel, 'lib', 'argsweb-1.0.0', 'public'));
    expect(answer.argv).toEqual(['public', `--port=${b.port}`, 'debug', '--extra', 'x y']);
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('start -- ARGS reaches the program, and a restart keeps them', async () => {
    const s = await sandbox(b.bin, 'argsweb', 'PORT');
    s.env.PORT = String(b.port);
    const start = s.run(['start', '--', 'one']);
    expect(start.status, start.stderr).toBe(0);
    expect((await ask(b.port)).argv).toEqual(['public', `--port=${b.port}`, 'prod', 'one']);
    expect(s.run(['restart']).status).toBe(0);
    expect((await ask(b.port)).argv).toEqual(['public', `--port=${b.port}`, 'prod', 'one']);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('refuses arguments given without --, and an unset variable without a default', async () => {
    const stray = spawnChild(b.bin, ['foreground', 'public', '-p', '8081'], { env: { ...process.env, PORT: String(b.port) } });
    const exit = await stray.waitForExit();
    expect(exit.code).toBe(1);
    expect(stray.stderr).toMatch(/foreground: unexpected argument "public"; a program app's arguments go after --/);
    const env = { ...process.env };
    delete env.PORT;
    const unset = spawnChild(b.bin, ['foreground'], { env });
    expect((await unset.waitForExit()).code).toBe(1);
    expect(unset.output).toMatch(/app argsweb failed to start: environment variable not set and no default: \$\{PORT\} in args\[1\]/);
  });

  it('refuses a restart in the foreground, naming the ways that work', async () => {
    const s = await sandbox(b.bin, 'argsweb', 'PORT');
    const node = spawnChild(b.bin, ['foreground'], { env: { ...s.env, PORT: String(b.port) } });
    await node.waitForOutput(/node argsweb@\S+ ready/);
    const r = s.run(['restart']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/runs a program app \(argsweb\).*start it with `start`.*workers: 1/);
    expect((await ask(b.port)).pid).toBe(node.pid);
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('rejects args on a module app at build time, naming the key', async () => {
    const t = tempDir('noderel-modargs-');
    cleanups.push(t.cleanup);
    writeFiles(t.dir, {
      'package.json': JSON.stringify({ name: 'modargs', version: '1.0.0', main: 'app.js' }),
      'app.js': 'export async function start() {}\n',
      'rel/relx.config': 'release: {name: modargs, version: 1.0.0}\napps: [{path: ., args: [x]}]\nnode_types: {modargs: [modargs]}\n',
    });
    const r = noderel(t.dir, ['build', '-q']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/apps\[0\]\.args: only a program app takes args/);
  });
});

describe('a node type with workers running a program', () => {
  it('restart replaces the workers, and no request fails', async () => {
    const b = await buildProgram('poolweb', (c) => c.replace(/apps:\n {6}- poolweb\n/, 'apps:\n      - poolweb\n    workers: 1\n'));
    expect(fs.readFileSync(path.join(b.dir, 'rel', 'relx.config'), 'utf8')).toMatch(/workers: 1/);
    const s = await sandbox(b.bin, 'poolweb', 'PORT');
    s.env.PORT = String(b.port);
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    const before = (await ask(b.port)).pid;
    const traffic = load(b.port);
    const r = await s.runAsync(['restart']);
    expect(r.status, r.stderr).toBe(0);
    const seen = await traffic.stop();
    expect(seen.failed).toEqual([]);
    expect(s.pid()).toBe(master);
    expect((await ask(b.port)).pid).not.toBe(before);
    expect(s.run(['stop']).status).toBe(0);
  });
});

describe('start tells the truth about a program', () => {
  /** A release whose program is `server` (its readiness: port `port`, start timeout 60 s). */
  async function release(name: string, server: string): Promise<Built> {
    const b = await buildProgram(name);
    fs.writeFileSync(path.join(b.rel, 'lib', `${name}-1.0.0`, 'server.js'), server);
    return b;
  }

  it('fails when another process holds the port (ready means this node listens), naming the error', async () => {
    const b = await release('takenweb', SERVER);
    const holder = net.createServer().listen(b.port, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    try {
      const s = await sandbox(b.bin, 'takenweb', 'PORT');
      s.env.PORT = String(b.port);
      const start = s.run(['start']);
      expect(start.status).toBe(1);
      expect(start.stderr).toMatch(/failed to start: .*EADDRINUSE/);
      expect(s.pid()).toBeUndefined();
    } finally {
      holder.close();
    }
  });

  it('with workers too: a taken port fails start, naming host:port, instead of serving elsewhere', async () => {
    const b = await buildProgram('takenpool', (c) => c.replace(/apps:\n {6}- takenpool\n/, 'apps:\n      - takenpool\n    workers: 2\n'));
    const holder = net.createServer().listen(b.port, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    try {
      const s = await sandbox(b.bin, 'takenpool', 'PORT');
      s.env.PORT = String(b.port);
      const start = s.run(['start', '--timeout', '30']);
      expect(start.status, start.stdout).toBe(1);
      expect(start.stderr).toContain(`EADDRINUSE: address already in use 127.0.0.1:${b.port}`);
      await waitFor(() => s.pid() === undefined, 'the master to leave');
    } finally {
      holder.close();
    }
  });

  it('fails at once, with the code, when the program exits while booting, even with code 0', async () => {
    const b = await release('quitter', "console.log('nothing to do'); process.exit(0);\n");
    const s = await sandbox(b.bin, 'quitter', 'PORT');
    const start = s.run(['start']); // start's own timeout is 60 s: exiting 1 here means it did not wait for it
    expect(start.status).toBe(1);
    expect(start.stderr).toMatch(/exited with code 0 before it was ready|exited with code 0 while booting/);
  });

  it('start --timeout S gives up no earlier than S seconds, with exit 2', async () => {
    const b = await release('sleeper', 'setInterval(() => {}, 1000);\n');
    const s = await sandbox(b.bin, 'sleeper', 'PORT');
    const t0 = process.hrtime.bigint();
    const start = s.run(['start', '--timeout', '2']);
    const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
    expect(start.status).toBe(2);
    expect(start.stderr).toMatch(/did not report ready within 2s/);
    expect(elapsedMs).toBeGreaterThanOrEqual(2000);
    const pid = s.pid();
    if (pid) process.kill(pid, 'SIGKILL');
  });
});

describe('a program that sets process.title and exits on TERM (as http-server does)', () => {
  // Its TERM handler exits at once: run as it is, it would cut every request in flight.
  const RUDE = `${SERVER}
process.title = 'rude-server';
process.on('SIGTERM', () => {
  require('node:fs').writeFileSync(process.env.RUDE_MARKER, 'term handler ran');
  process.exit(0);
});
`;

  it('keeps the node title (pid and pgrep find it), drains before its TERM handler runs, and fails no request through USR2 and TERM', async () => {
    const b = await buildProgram('rudeweb');
    fs.writeFileSync(path.join(b.rel, 'lib', 'rudeweb-1.0.0', 'server.js'), RUDE);
    const s = await sandbox(b.bin, 'rudeweb', 'PORT');
    const marker = path.join(s.tmp, '..', 'marker');
    s.env.PORT = String(b.port);
    s.env.RUDE_MARKER = marker;
    expect(s.run(['start']).status).toBe(0);
    const old = s.pid()!;
    expect(old).toBeGreaterThan(0); // the launcher still recognises its node
    expect(fs.readFileSync(`/proc/${old}/comm`, 'utf8').trim()).toBe('rudeweb');
    const traffic = load(b.port);
    await waitFor(async () => (await ask(b.port)).pid === old, 'the node answering');
    process.kill(old, 'SIGUSR2');
    await waitFor(() => { const p = s.pid(); return p !== undefined && p !== old; }, 'the new node after USR2');
    process.kill(old, 'SIGTERM');
    await waitFor(() => !alive(old), 'the old node to drain and exit');
    const seen = await traffic.stop();
    expect(seen.failed).toEqual([]);
    expect(fs.readFileSync(marker, 'utf8')).toBe('term handler ran'); // its own handler ran, last
    fs.rmSync(marker);
    const now = s.pid()!;
    expect(s.run(['stop']).status).toBe(0);
    expect(alive(now)).toBe(false);
    expect(fs.existsSync(marker)).toBe(true);
    expect(fs.existsSync(path.join(s.tmp, fs.readdirSync(s.tmp).find((d) => d.startsWith('rudeweb@'))!, 'node.pid'))).toBe(false);
  });
});

describe('output readiness of a daemon that writes to fd 1 itself (pino.destination(1), sonic-boom)', () => {
  it('start sees the pattern in what went straight to console.log', async () => {
    const t = tempDir('noderel-fd1-');
    cleanups.push(t.cleanup);
    writeFiles(t.dir, {
      'package.json': JSON.stringify({ name: 'fdone', version: '1.0.0', main: 'server.js' }),
      'server.js': "const fs = require('node:fs');\nfor (let i = 0; i < 2000; i++) fs.writeSync(1, `boot line ${i}\\n`);\nfs.writeSync(1, 'fd one ready\\n');\nsetInterval(() => {}, 1000);\n",
    });
    expect(noderel(t.dir, ['init', '--ready-output', 'fd one ready']).code).toBe(0);
    expect(noderel(t.dir, ['build', '-q']).code).toBe(0);
    const s = await sandbox(path.join(t.dir, '_rel', 'fdone', 'bin', 'fdone'), 'fdone', 'PORT');
    const start = s.run(['start', '--timeout', '30']);
    expect(start.status, start.stderr).toBe(0);
    expect(fs.readFileSync(s.logFile(), 'utf8')).toMatch(/fd one ready/);
    expect(s.run(['stop']).status).toBe(0);
  });
});
