/**
 * Control across hosts, for real: two network namespaces joined by a veth pair stand for two
 * hosts. A node runs in namespace A with a TCP control port on A's address; from namespace B,
 * the same release reaches it with `--remote HOST[:PORT]` and with `NODE_NAME=<type>@<host A>`
 * (the name resolved through B's own hosts file, which `ip netns exec` mounts over /etc/hosts):
 * ping, status, eval and a remote_console in a terminal, with and without TLS; a wrong cookie is
 * refused, and the commands that act on the node's process say they run on its host.
 *
 * Needs root and `ip netns`; skipped (with a line saying why) without them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { Terminal } from '../helpers/tmux.js';
import { makeCa } from '../helpers/tls.js';

const nsA = `nrl-${process.pid}-a`;
const nsB = `nrl-${process.pid}-b`;
// veth names: at most 15 characters
const vethA = `nrl${process.pid % 1_000_000}a`;
const vethB = `nrl${process.pid % 1_000_000}b`;
// a private /24 of our own: 10.<200-250>.<0-255>.0
const subnet = `10.${200 + Math.floor(Math.random() * 51)}.${Math.floor(Math.random() * 256)}`;
const ipA = `${subnet}.1`;
const ipB = `${subnet}.2`;
/** Host A's name, known only to B's hosts file (and never this host's name). */
const hostA = `nrl-${process.pid}-hosta`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why the test cannot run here, or undefined: it needs root and `ip netns add`. */
function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces need it)';
  const probe = `nrl-${process.pid}-probe`;
  try {
    ip('netns', 'add', probe);
  } catch (err) {
    return `\`ip netns add\` failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim().split('\n')[0]}`;
  }
  try {
    ip('netns', 'del', probe);
  } catch {
    // best effort: the real namespaces are removed in afterAll
  }
  return undefined;
}

const skip = skipReason();
if (skip !== undefined) console.log(`remote-hosts.test.ts skipped: ${skip}`);

let project: { dir: string; cleanup: () => void } | undefined;
let bin = '';
const temps: { dir: string; cleanup: () => void }[] = [];
const terminals: Terminal[] = [];
/** RELEASE_TMP of every node started in A: afterAll kills what is left, by pid. */
const nodeTmps: string[] = [];

/** /etc/netns/<ns>/hosts; once more if a parallel run's cleanup removed an empty /etc/netns in between. */
function writeHostsFile(ns: string, text: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      fs.mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      fs.writeFileSync(`/etc/netns/${ns}/hosts`, text);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw err;
    }
  }
}

function setUpHosts(): void {
  ip('netns', 'add', nsA);
  ip('netns', 'add', nsB);
  ip('link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB);
  ip('link', 'set', vethA, 'netns', nsA);
  ip('link', 'set', vethB, 'netns', nsB);
  for (const [ns, dev, addr] of [[nsA, vethA, ipA], [nsB, vethB, ipB]] as const) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
    ip('-n', ns, 'link', 'set', dev, 'up');
    // `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts
    writeHostsFile(ns, `127.0.0.1 localhost\n${ipA} ${hostA}\n${ipB} nrl-${process.pid}-hostb\n`);
  }
}

/** Whether /etc/netns was there before us (else it goes once empty). */
const etcNetnsExisted = fs.existsSync('/etc/netns');

function tearDownHosts(): void {
  for (const ns of [nsA, nsB]) {
    try {
      ip('netns', 'del', ns); // takes the veth pair with it
    } catch {
      // never created, or gone
    }
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  if (!etcNetnsExisted) {
    try {
      fs.rmdirSync('/etc/netns'); // only when empty: another run may be using it
    } catch {
      // not empty, or gone
    }
  }
}

function killNodes(): void {
  for (const tmp of nodeTmps) {
    for (const node of fs.existsSync(tmp) ? fs.readdirSync(tmp) : []) {
      const file = path.join(tmp, node, 'node.pid');
      if (!fs.existsSync(file)) continue;
      try {
        process.kill(Number(fs.readFileSync(file, 'utf8')), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

beforeAll(() => {
  if (skip !== undefined) return;
  setUpHosts();
  ({ bin, ...project } = builtFixture('ops'));
});

afterAll(() => {
  if (skip !== undefined) return;
  for (const t of terminals) t.close();
  killNodes();
  tearDownHosts();
  for (const t of temps) t.cleanup();
  project?.cleanup();
});

/** A release's own run and log directories, as a host of its own would have them. */
function hostDirs(prefix: string): NodeJS.ProcessEnv {
  const t = tempDir(prefix);
  temps.push(t);
  return { REL: 'web', RELEASE_TMP: path.join(t.dir, 'tmp'), RUNNER_LOG_DIR: path.join(t.dir, 'log') };
}

/** `bin/ops ARGS` in namespace `ns` with `env` (the environment passes through `ip netns exec`). */
function runIn(ns: string, env: NodeJS.ProcessEnv, args: string[]) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NODEREL_') && k !== 'NODE_NAME' && k !== 'OPS_COOKIE'));
  return spawnSync('ip', ['netns', 'exec', ns, bin, ...args], { env: { ...base, ...env }, encoding: 'utf8', timeout: 120_000 });
}

/** A terminal whose command runs in namespace B. */
function terminalInB(args: string, env: NodeJS.ProcessEnv): Terminal {
  const t = Terminal.start(`ip netns exec ${nsB} ${bin} ${args}`, env);
  terminals.push(t);
  return t;
}

interface NodeInA {
  env: NodeJS.ProcessEnv;
  pid: number;
  port: number;
  log: () => string;
}

/** Starts the web node in A, its control port on A's address. */
async function startNodeInA(extra: NodeJS.ProcessEnv = {}): Promise<NodeInA> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...hostDirs('noderel-host-a-'), OPS_PORT: String(await freePort()), NODEREL_CONTROL_PORT: `${ipA}:${port}`, ...extra };
  nodeTmps.push(env.RELEASE_TMP!);
  const started = runIn(nsA, env, ['start']);
  expect(started.stderr).toBe('');
  expect(started.status).toBe(0);
  const pid = Number(runIn(nsA, env, ['pid']).stdout);
  expect(pid).toBeGreaterThan(0);
  const log = () => {
    const dir = env.RUNNER_LOG_DIR!;
    return fs.readFileSync(path.join(dir, fs.readdirSync(dir)[0]!, 'console.log'), 'utf8');
  };
  return { env, pid, port, log };
}

const thisHost = os.hostname().split('.')[0]!;

describe.skipIf(skip !== undefined)('control across hosts (two network namespaces)', () => {
  it('without TLS: --remote HOST:PORT, --remote HOST and NODE_NAME=<type>@<host> reach the node from the other host; remote_console works; a wrong cookie is refused; stop, pid and attach run on the node\'s host', async () => {
    // named after its host, as an Erlang node would be: on A itself that name is a node running
    // here (start, pid, stop go through its pid file and socket), from B a node on A
    const a = await startNodeInA({ NODE_NAME: `web@${hostA}` });
    const remote = `${ipA}:${a.port}`;
    expect(runIn(nsA, a.env, ['ping'])).toMatchObject({ status: 0, stdout: 'pong\n' });
    const b = hostDirs('noderel-host-b-');
    // B has no node of its own
    expect(runIn(nsB, b, ['ping'])).toMatchObject({ status: 1, stderr: `Node web@${thisHost} is not running!\n` });

    // --remote HOST:PORT
    expect(runIn(nsB, b, ['ping', '--remote', remote])).toMatchObject({ status: 0, stdout: 'pong\n' });
    expect(runIn(nsB, b, ['eval', '--remote', remote, 'process.pid'])).toMatchObject({ status: 0, stdout: `${a.pid}\n` });
    expect(JSON.parse(runIn(nsB, b, ['status', '--json', '--remote', remote]).stdout)).toMatchObject({ pid: a.pid, stage: 'running' });

    // --remote HOST: the port of NODEREL_CONTROL_PORT, of which a HOST: part (the node's bind address) is not the target
    expect(runIn(nsB, { ...b, NODEREL_CONTROL_PORT: `127.0.0.1:${a.port}` }, ['ping', '--remote', hostA])).toMatchObject({ status: 0, stdout: 'pong\n' });

    // NODE_NAME=web@<host A>: the name resolved through B's hosts file, the port from NODEREL_CONTROL_PORT
    const named = { ...b, NODE_NAME: `web@${hostA}`, NODEREL_CONTROL_PORT: String(a.port) };
    expect(runIn(nsB, named, ['ping'])).toMatchObject({ status: 0, stdout: 'pong\n', stderr: '' });
    expect(runIn(nsB, { ...named, NODEREL_CONTROL_PORT: `${ipA}:${a.port}` }, ['ping'])).toMatchObject({ status: 0, stdout: 'pong\n' });
    expect(runIn(nsB, named, ['eval', '1 + 2 + ":" + process.pid'])).toMatchObject({ status: 0, stdout: `3:${a.pid}\n` });
    const status = runIn(nsB, named, ['status']);
    expect(status.status).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^pid:\\s+${a.pid}$`, 'm'));
    expect(status.stdout).toMatch(new RegExp(`^node:\\s+web@${hostA}$`, 'm'));
    expect(status.stdout).toMatch(/^stage:\s+running$/m);

    // remote_console in a terminal in B
    const t = terminalInB('remote_console', named);
    await t.waitFor(new RegExp(`Remote console on web@${hostA}\\.`));
    await t.waitFor(/web@\S+> $/m);
    t.type('process.pid');
    await t.waitFor(new RegExp(`^${a.pid}$`, 'm'));
    t.type('apps.opsapp.greeting');
    await t.waitFor(/^'hello'$/m);
    t.press('C-d');
    const screen = await t.waitFor(/\[exit \d+\]/);
    expect(screen).toMatch(new RegExp(`Left web@${hostA}\\.`));
    expect(screen).toMatch(/\[exit 0\]/);

    // no port known: one line saying what to set
    const { NODEREL_CONTROL_PORT: _port, ...noPort } = named;
    expect(runIn(nsB, noPort, ['ping'])).toMatchObject({
      status: 1,
      stdout: '',
      stderr: `no control port known for node web@${hostA} on ${hostA}: set NODEREL_CONTROL_PORT (the node's, in the environment or as -env in vm.args) or pass --remote HOST:PORT\n`,
    });

    // a host the resolver does not know (B's hosts file lacks it, and B reaches no DNS server)
    const unknown = `nrl-${process.pid}-nosuch`;
    expect(runIn(nsB, { ...named, NODE_NAME: `web@${unknown}` }, ['ping'])).toMatchObject({
      status: 1,
      stdout: '',
      stderr: expect.stringMatching(new RegExp(`^ping: cannot resolve ${unknown} \\((ENOTFOUND|EAI_AGAIN)\\): add it to DNS or /etc/hosts, or pass --remote ADDRESS:PORT\n$`)),
    });

    // a wrong cookie from B is refused (by address and by name), and A's node logs B's address
    expect(runIn(nsB, { ...b, OPS_COOKIE: 'not-the-cookie' }, ['eval', '--remote', remote, 'process.pid'])).toMatchObject({
      status: 1,
      stdout: '',
      stderr: `Node ${remote} refused the connection: wrong cookie (ours is from OPS_COOKIE); use the node's cookie\n`,
    });
    expect(runIn(nsB, { ...named, OPS_COOKIE: 'not-the-cookie' }, ['ping'])).toMatchObject({
      status: 1,
      stderr: `Node web@${hostA} refused the connection: wrong cookie (ours is from OPS_COOKIE); use the node's cookie\n`,
    });
    expect(a.log()).toMatch(new RegExp(`refused a control connection: wrong cookie from ${ipB.replace(/\./g, '\\.')}:\\d+ on ${remote.replace(/\./g, '\\.')}`));

    // what acts on the node's process runs on its host: one line, the node untouched
    for (const command of ['stop', 'pid', 'attach', 'restart']) {
      expect(runIn(nsB, named, [command])).toMatchObject({
        status: 1,
        stdout: '',
        stderr: `${command} runs on the node's host: web@${hostA} is on ${hostA}; run ${command} there (from here: ping, status, eval, remote_console)\n`,
      });
    }
    expect(runIn(nsB, b, ['stop', '--remote', remote])).toMatchObject({ status: 1, stderr: "stop: --remote is for eval, remote_console, ping, status; run stop on the node's own host\n" });
    expect(runIn(nsB, named, ['ping']).stdout).toBe('pong\n');

    // stopped on its own host, it no longer answers from B
    expect(runIn(nsA, a.env, ['stop']).status).toBe(0);
    expect(runIn(nsB, named, ['ping'])).toMatchObject({
      status: 1,
      stderr: `Node web@${hostA} is not running, or no control port answers on ${hostA}:${a.port} (is NODEREL_CONTROL_PORT set on it?)\n`,
    });
  });

  it('with TLS: the node is verified by its certificate, by address (--remote) and by the name in NODE_NAME; remote_console works through it; a wrong cookie or a client without the CA is refused', async () => {
    const pki = hostDirs('noderel-pki-');
    const ca = makeCa(path.join(pki.RELEASE_TMP!, '..', 'pki'));
    const cert = ca.issue('node-a', `DNS:${hostA},IP:${ipA}`);
    const a = await startNodeInA({ NODEREL_CONTROL_TLS_CERT: cert.certFile, NODEREL_CONTROL_TLS_KEY: cert.keyFile });
    const remote = `${ipA}:${a.port}`;
    expect(a.log()).toContain(`control port listening on ${remote} (TLS, cookie-authenticated)`);
    const b = { ...hostDirs('noderel-host-b-'), NODEREL_CONTROL_TLS_CA: ca.caFile };

    expect(runIn(nsB, b, ['ping', '--remote', remote])).toMatchObject({ status: 0, stdout: 'pong\n' });
    expect(runIn(nsB, b, ['eval', '--remote', remote, 'process.pid'])).toMatchObject({ status: 0, stdout: `${a.pid}\n` });
    expect(JSON.parse(runIn(nsB, b, ['status', '--json', '--remote', remote]).stdout)).toMatchObject({ pid: a.pid, stage: 'running' });

    // by name: the certificate must carry host A's name, and does
    const named = { ...b, NODE_NAME: `web@${hostA}`, NODEREL_CONTROL_PORT: `${ipA}:${a.port}` };
    expect(runIn(nsB, named, ['ping'])).toMatchObject({ status: 0, stdout: 'pong\n', stderr: '' });
    expect(runIn(nsB, named, ['eval', 'process.pid'])).toMatchObject({ status: 0, stdout: `${a.pid}\n` });
    expect(JSON.parse(runIn(nsB, named, ['status', '--json']).stdout)).toMatchObject({ pid: a.pid });

    const t = terminalInB('remote_console', named);
    await t.waitFor(new RegExp(`Remote console on web@${hostA}\\.`));
    await t.waitFor(/web@\S+> $/m);
    t.type('6 * 7 + ":" + process.pid');
    await t.waitFor(new RegExp(`^'42:${a.pid}'$`, 'm'));
    t.press('C-d');
    const screen = await t.waitFor(/\[exit \d+\]/);
    expect(screen).toMatch(/\[exit 0\]/);

    // a wrong cookie through TLS is still refused
    expect(runIn(nsB, { ...named, OPS_COOKIE: 'not-the-cookie' }, ['eval', 'process.pid'])).toMatchObject({
      status: 1,
      stdout: '',
      stderr: `Node web@${hostA} refused the connection: wrong cookie (ours is from OPS_COOKIE); use the node's cookie\n`,
    });
    // a client without the CA is told the port speaks TLS
    const { NODEREL_CONTROL_TLS_CA: _ca, ...plain } = named;
    expect(runIn(nsB, plain, ['ping'])).toMatchObject({
      status: 1,
      stderr: `ping: the node on ${hostA}:${a.port} closed the connection before its greeting: if its control port uses TLS, set NODEREL_CONTROL_TLS_CA to the CA file that signed its certificate\n`,
    });
    // a certificate for another name is not trusted
    const other = runIn(nsB, { ...named, NODEREL_CONTROL_TLS_SERVERNAME: 'someone-else.example' }, ['ping']);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(new RegExp(`^ping: the certificate of the node on ${hostA}:${a.port} is not trusted: `));

    expect(runIn(nsA, a.env, ['stop']).status).toBe(0);
  });
});
