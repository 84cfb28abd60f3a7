// templates/logrotate, checked by the real logrotate: it parses, and forced rotations of two
// writing nodes (rename, create, postrotate USR1 from the pid files, delaycompress) lose no line.
// The nodes are small processes using the compiled console-log and pid-file modules, as the
// release runs them.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnChild, useChildProcesses, type Child } from '../helpers/proc.js';
import { waitFor } from '../helpers/sandbox.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (name: string): string => pathToFileURL(path.join(repo, 'dist', 'node', name)).href;

const NODE = `
const { ConsoleLog } = await import(${JSON.stringify(dist('logs/console-log.js'))});
const { writePidFile, removePidFile } = await import(${JSON.stringify(dist('supervision/pid-file.js'))});
const [root, node] = process.argv.slice(2);
const log = new ConsoleLog({ file: root + '/log/' + node + '/console.log', maxBytes: 0, generations: 5 });
const pidFile = root + '/tmp/' + node + '/node.pid';
(await import('node:fs')).mkdirSync(root + '/tmp/' + node, { recursive: true }); // the launcher's job
writePidFile(pidFile);
let n = 0, reopened = 0;
process.on('SIGUSR1', () => { log.reopen(); reopened++; });
const timer = setInterval(() => { for (let k = 0; k < 20; k++) log.write(node + ' ' + ++n + '\\n'); }, 2);
process.on('SIGTERM', () => {
  clearInterval(timer);
  log.close();
  removePidFile(pidFile);
  process.stdout.write('wrote ' + n + ' reopened ' + reopened + '\\n');
});
process.stdout.write('ready\\n');
`;

useChildProcesses();

let root: string;
let conf: string;
let state: string;
let script: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel logrotate-')); // a space in the install path
  const rendered = fs
    .readFileSync(path.join(repo, 'templates', 'logrotate'), 'utf8')
    .replaceAll('{{root}}', root)
    .replaceAll('{{release_name}}', 'kazoo');
  expect(rendered).not.toMatch(/\{\{/);
  conf = path.join(root, 'logrotate.conf');
  fs.writeFileSync(conf, rendered);
  fs.chmodSync(conf, 0o644); // logrotate run as root ignores a group- or world-writable config
  state = path.join(root, 'logrotate.state');
  script = path.join(root, 'node.mjs');
  fs.writeFileSync(script, NODE);
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function logrotate(...args: string[]): { code: number | null; output: string } {
  const r = spawnSync('logrotate', ['-s', state, ...args, conf], { encoding: 'utf8' });
  if (r.error) throw new Error(`logrotate could not run (${r.error.message}); install it: apt-get install -y logrotate`);
  return { code: r.status, output: r.stdout + r.stderr };
}

describe('templates/logrotate', () => {
  it('is accepted by logrotate --debug', () => {
    fs.mkdirSync(path.join(root, 'log', 'kazoo_apps@host'), { recursive: true, mode: 0o750 });
    fs.writeFileSync(path.join(root, 'log', 'kazoo_apps@host', 'console.log'), 'x\n');
    const { code, output } = logrotate('--debug');
    expect(output, output).not.toMatch(/error:/i);
    expect(code, output).toBe(0);
    expect(output).toContain(`rotating pattern: "${root}/log/*/console.log"`);
    expect(output).toMatch(/after 1 days \(7 rotations\)/);
    expect(output).toContain(`${root}/log/kazoo_apps@host/console.log`);
    expect(execFileSync('logrotate', ['--version'], { encoding: 'utf8' })).toMatch(/logrotate \d/);
    fs.rmSync(path.join(root, 'log'), { recursive: true });
  });

  it('rotates every node\'s console.log and signals every node to reopen: no line lost', async () => {
    const nodes = ['kazoo_apps@host', 'ecallmgr@host'];
    const children: Child[] = nodes.map((node) => spawnChild(process.execPath, [script, root, node], { label: node }));
    await Promise.all(children.map((c) => c.waitForOutput(/^ready$/m)));
    // Pid files postrotate must step over: a dead node's, and garbage.
    fs.mkdirSync(path.join(root, 'tmp', 'dead@host'), { recursive: true });
    fs.writeFileSync(path.join(root, 'tmp', 'dead@host', 'node.pid'), `${spawnSync(process.execPath, ['-e', '0']).pid}\n`);
    fs.mkdirSync(path.join(root, 'tmp', 'junk@host'), { recursive: true });
    fs.writeFileSync(path.join(root, 'tmp', 'junk@host', 'node.pid'), 'rm -rf /\n');

    // Each node has written into console.log. After a rotation the new console.log stays empty
    // until the node has reopened its log on USR1 (until then it writes into console.log.1), so
    // lines there mean the node reopened: the next step may start. A node that never reopens
    // fails the wait.
    const size = (file: string): number => {
      try {
        return fs.statSync(file).size;
      } catch {
        return 0;
      }
    };
    const written = (what: string): Promise<void> =>
      waitFor(() => nodes.every((node) => size(path.join(root, 'log', node, 'console.log')) > 0), what, 10_000);
    await written('each node to write into console.log');
    let run = logrotate('--force'); // console.log -> console.log.1, new console.log, USR1
    expect(run.code, run.output).toBe(0);
    await written('each node to reopen console.log after the first rotation and write into it');
    run = logrotate('--force'); // console.log.1 -> console.log.2.gz (delaycompress), console.log -> .1
    expect(run.code, run.output).toBe(0);
    await written('each node to reopen console.log after the second rotation and write into it');

    for (const [i, node] of nodes.entries()) {
      const child = children[i] as Child;
      child.signal('SIGTERM');
      const m = await child.waitForOutput(/^wrote (\d+) reopened (\d+)$/m);
      expect(Number(m[2]), `${node} reopened its log on each rotation`).toBe(2);
      const total = Number(m[1]);
      const dir = path.join(root, 'log', node);
      expect(fs.readdirSync(dir).sort()).toEqual(['console.log', 'console.log.1', 'console.log.2.gz']);
      expect(fs.statSync(path.join(dir, 'console.log')).mode & 0o777).toBe(0o640);
      const parts = [
        zlib.gunzipSync(fs.readFileSync(path.join(dir, 'console.log.2.gz'))).toString(),
        fs.readFileSync(path.join(dir, 'console.log.1'), 'utf8'),
        fs.readFileSync(path.join(dir, 'console.log'), 'utf8'),
      ];
      expect(parts.every((p) => p.length > 0)).toBe(true);
      const expected = Array.from({ length: total }, (_, k) => `${node} ${k + 1}\n`).join('');
      expect(parts.join('') === expected, `${node}: the three files hold lines 1..${total} once each, in order`).toBe(true);
      expect((await child.waitForExit()).code).toBe(0);
    }
  });
});
