/**
 * The demo release `kazoo` built from this repository's rel/ and apps/ (copied to a temp dir):
 * the pinned Node 22 runtime, both node types serving, and the console in a real terminal.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listTree, noderel, repoRoot, tempDir } from '../helpers/project.js';
import { spawnChild, useChildProcesses } from '../helpers/proc.js';
import { freePort } from '../helpers/ports.js';
import { httpGet } from '../helpers/sandbox.js';
import { Terminal } from '../helpers/tmux.js';

useChildProcesses();

const get = httpGet;

let project: { dir: string; cleanup: () => void };
let rel: string;
const terminals: Terminal[] = [];

beforeAll(() => {
  project = tempDir('noderel-kazoo-');
  for (const d of ['rel', 'apps']) fs.cpSync(path.join(repoRoot, d), path.join(project.dir, d), { recursive: true });
  const r = noderel(project.dir, ['build']);
  expect(r.code, r.stderr).toBe(0);
  rel = path.join(project.dir, '_rel', 'kazoo');
});
afterAll(() => project.cleanup());
afterEach(() => {
  while (terminals.length) terminals.pop()!.close();
});

describe('the kazoo demo release', () => {
  it('ships the pinned Node 22 runtime recorded in start.data', () => {
    const [nodeVsn, relVsn] = fs.readFileSync(path.join(rel, 'releases/start.data'), 'utf8').trim().split(' ');
    expect(relVsn).toBe('4.3.0');
    expect(nodeVsn).toMatch(/^22\.\d+\.\d+$/);
    const version = execFileSync(path.join(rel, `node-${nodeVsn}`, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    expect(version).toBe(`v${nodeVsn}`);
    expect(listTree(rel)).toEqual(expect.arrayContaining(['bin/kazoo', 'bin/kazoo-4.3.0', 'lib/crossbar-4.3.0/package.json', 'lib/ecallmgr-4.3.0/src/app.js', 'etc/config.ini.example']));
  });

  it('kazoo_apps serves crossbar GET / in the foreground; master and workers collect their boot garbage', async () => {
    const port = await freePort();
    const node = spawnChild(path.join(rel, 'bin/kazoo'), ['foreground'], { env: { ...process.env, REL: 'kazoo_apps', CROSSBAR_PORT: String(port), NODEREL_LOG_LEVEL: 'debug' } });
    await node.waitForOutput(/node kazoo_apps@\S+ ready \(kazoo 4\.3\.0, apps: crossbar; 2 workers\)/);
    const res = await get(port, '/');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ node: expect.stringMatching(/^kazoo_apps@/), release: 'kazoo', version: '4.3.0', uptime: expect.any(Number) });
    // On the pinned Node 22 (V8 12: the 'last-resort' collection): each worker before its apps
    // start, the master once its workers are ready; each gives back heap.
    await node.waitForOutput(/\[kazoo_apps@[^\]/]+\] garbage collected after boot/);
    const gcs = [...node.output.matchAll(/\[kazoo_apps@[^\]/]+(\/w\d)?\] garbage collected after boot in [\d.]+ ms: heap ([\d.]+) MiB -> ([\d.]+) MiB/g)];
    expect(gcs.map((m) => m[1] ?? 'master').sort()).toEqual(['/w0', '/w1', 'master']);
    for (const m of gcs) expect(Number(m[3]), m[0]).toBeLessThan(Number(m[2]));
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('ecallmgr completes a call', async () => {
    const port = await freePort();
    const node = spawnChild(path.join(rel, 'bin/kazoo'), ['foreground'], { env: { ...process.env, REL: 'ecallmgr', ECALLMGR_PORT: String(port) } });
    await node.waitForOutput(/node ecallmgr@\S+ ready/);
    expect(await get(port, '/call?duration=20')).toEqual({ status: 200, body: 'completed\n' });
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('console: a REPL inside the node in a real terminal; Ctrl-D stops it gracefully', async () => {
    const port = await freePort();
    const term = Terminal.start(`${path.join(rel, 'bin/kazoo')} console`, { REL: 'ecallmgr', ECALLMGR_PORT: String(port) });
    terminals.push(term);
    await term.waitFor(/ecallmgr@\S+> $/m);
    term.type('node.type + " " + typeof apps.ecallmgr + " " + config.ecallmgr.port');
    await term.waitFor(/'ecallmgr object 8080'/);
    expect((await get(port, '/health')).status).toBe(200);
    term.press('C-d');
    const screen = await term.waitFor(/\[exit \d+\]/);
    expect(screen).toMatch(/console closed; stopping the node gracefully/);
    expect(screen).toMatch(/\[exit 0\]/);
  });
});
