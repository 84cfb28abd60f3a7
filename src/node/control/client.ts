/**
 * The control commands run by `bin/<name>` against a running node: each resolves the
 * cookie (cookie.ts), talks to the node over its control socket (control.ts), prints the answer
 * and returns the exit code. Kept light: `ping` is measured against `node -e 0`.
 *
 *   not running        `Node <node> is not running!`, 1
 *   wrong cookie       `Node <node> refused the connection: wrong cookie (...)`, 1
 *   socket not ours    `<command>: permission denied connecting to <socket> (EACCES): ...`, 1
 *   command failed     the node's error, 1
 *
 * A node on another host (`--remote HOST[:PORT]`, or `NODE_NAME=<name>@<other host>`, which the
 * launcher turns into `--remote <host>`) is reached on its TCP control port (controlTarget).
 */
import { writeSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { controlRequest, controlStream, ControlError, describeEndpoint, parseHostPort, type ControlEndpoint } from './control.js';
import { readIniCookie, resolveCookie, type CookieResolution } from './cookie.js';
import type { TlsClientConfig } from './control-tls.js';
import { BootError } from '../errors.js';
import { nodeNameFor, readLaunchEnv } from '../release/launch-env.js';
import { isAlive, readPidFile } from '../supervision/pid-file.js';

export const CLIENT_COMMANDS = ['ping', 'status', 'eval', 'stop', 'restart', 'reload', 'reopen_logs', 'cookie', 'attach', 'remote_console'] as const;

interface Target {
  /** The node as messages name it: its name, or the host:port of `--remote`. */
  nodeName: string;
  endpoint: ControlEndpoint;
  /** The node's run directory on this host (absent for a node on another host). */
  runDir?: string;
  cookie: CookieResolution;
  /** A TCP endpoint with NODEREL_CONTROL_TLS_CA: TLS, and the node's certificate verified. */
  tls?: TlsClientConfig;
}

/** The commands `--remote HOST[:PORT]` takes: eval and remote_console, and the two that check a node. */
export const REMOTE_COMMANDS = ['eval', 'remote_console', 'ping', 'status'] as const;

/**
 * Where a node of this launch environment listens, and the cookie to talk to it: its control
 * socket, or with `remote` (`HOST:PORT`, or `HOST` alone) the TCP control port of a node on
 * another host. `HOST` alone takes the port of NODEREL_CONTROL_PORT (the environment's, or
 * vm.args' `-env`, which the launcher exports): the same release runs on both hosts, so the
 * node's port is ours; of a `HOST:PORT` there only the port counts (that host is the address
 * the node binds, not the node to reach). The launcher turns `NODE_NAME=<name>@<other host>`
 * into `--remote <other host>`; then the node is named by that name in messages.
 */
export function controlTarget(env: NodeJS.ProcessEnv = process.env, remote?: string): Target {
  const launch = readLaunchEnv(env);
  const endpoint = remote === undefined ? undefined : remoteEndpoint(remote, launch.controlPort, launch.nodeName); // a typo is told before any I/O
  const cookie = resolveCookie(cookieOptions(env));
  if (endpoint) {
    const named = launch.nodeName !== undefined && hostOfNodeName(launch.nodeName) === endpoint.host.toLowerCase();
    return { nodeName: named ? launch.nodeName! : describeEndpoint(endpoint), endpoint, cookie };
  }
  const nodeName = nodeNameFor(launch, launch.nodeType ?? '');
  const runDir = launch.runDir ?? join(launch.releaseTmp, nodeName);
  return { nodeName, endpoint: { path: join(runDir, 'ctl') }, runDir, cookie };
}

/** The host part of a node name `<name>@<host>`, lower case; undefined without one. */
function hostOfNodeName(nodeName: string): string | undefined {
  const at = nodeName.lastIndexOf('@');
  return at < 0 || at === nodeName.length - 1 ? undefined : nodeName.slice(at + 1).toLowerCase();
}

/** `--remote`'s value as an endpoint: `HOST:PORT`, `PORT` (on 127.0.0.1), or `HOST` with the port of NODEREL_CONTROL_PORT. */
function remoteEndpoint(remote: string, controlPort: string | undefined, nodeName: string | undefined): { host: string; port: number } {
  const text = remote.trim();
  const bracketed = /^\[([0-9A-Fa-f:.]+)\]$/.exec(text);
  const bare = isIPv6(text) || (/^[^:\s[\]]+$/.test(text) && !/^\d+$/.test(text));
  const host = bracketed ? bracketed[1]! : bare ? text : undefined;
  if (host === undefined) return parseHostPort(remote, '--remote');
  if (controlPort === undefined) {
    const which = nodeName !== undefined && hostOfNodeName(nodeName) === host.toLowerCase() ? `node ${nodeName}` : 'the node';
    throw new BootError(
      'EREMOTE',
      `no control port known for ${which} on ${host}: set NODEREL_CONTROL_PORT (the node's, in the environment or as -env in vm.args) or pass --remote HOST:PORT`,
    );
  }
  return { host, port: parseHostPort(controlPort, 'NODEREL_CONTROL_PORT').port };
}

function cookieOptions(env: NodeJS.ProcessEnv) {
  const launch = readLaunchEnv(env);
  return {
    relName: launch.relName ?? '',
    nodeType: launch.nodeType ?? '',
    root: launch.root,
    vmArgsFile: launch.vmArgsFile,
    env,
  };
}

function parseFlag(args: string[], name: string): { value?: string; rest: string[] } {
  const rest: string[] = [];
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === name) value = args[++i] ?? '';
    else if (a.startsWith(`${name}=`)) value = a.slice(name.length + 1);
    else rest.push(a);
  }
  return { value, rest };
}

function out(text: string): void {
  writeAll(1, text.endsWith('\n') ? text : `${text}\n`);
}

function fail(text: string): number {
  writeAll(2, `${text}\n`);
  return 1;
}

/**
 * Writes to fd 1 or 2 directly: `process.stdout` would load node:stream and build a stream
 * (about a third of `node -e 0` again, for one line of output). Retries while a non-blocking
 * pipe is full.
 */
function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

/** The time limit of an `eval` without `--timeout` (evaluate.ts DEFAULT_EVAL_TIMEOUT_MS; not imported: ping stays light). */
const EVAL_TIMEOUT_S = 60;

/** `ping`'s exit code for a node that answers but is degraded (1 is "not running"). */
const PING_DEGRADED = 3;

/** How long a client keeps trying while a live node's control socket is missing (a USR2 hand-over). */
const HANDOVER_WAIT_MS = 2_000;

async function request(t: Target, command: string, args: unknown[] = [], timeoutMs = 30_000): Promise<unknown> {
  // One deadline for the whole request: connection, handshake, hand-over retries and answer.
  const end = Date.now() + timeoutMs;
  const handoverDeadline = Date.now() + HANDOVER_WAIT_MS;
  for (;;) {
    try {
      return await controlRequest({ endpoint: t.endpoint, cookie: t.cookie.cookie, command, args, timeoutMs: Math.max(1, end - Date.now()), ...(t.tls ? { tls: t.tls } : {}) });
    } catch (err) {
      // During a USR2 hand-over the socket path is briefly missing: libuv unlinks it when the old
      // master closes, and the new master renames its own into place right after. A node whose
      // pid file names a live process is not "not running": try again for a moment.
      if (!(err instanceof ControlError) || err.code !== 'ENOTRUNNING' || Date.now() > Math.min(handoverDeadline, end) || !liveNodePid(t)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

function liveNodePid(t: Target): boolean {
  const dir = t.runDir;
  if (dir === undefined) return false;
  return [join(dir, 'node.pid'), join(dir, 'node.pid.oldbin')].some((f) => {
    const pid = readPidFile(f);
    return pid !== undefined && isAlive(pid);
  });
}

/** Runs a client command; resolves with the exit code. */
export async function runClient(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (command === 'cookie') return printCookie(args, env);
  const { value: remote, rest } = parseFlag(args, '--remote');
  if (remote !== undefined && !(REMOTE_COMMANDS as readonly string[]).includes(command)) {
    return fail(`${command}: --remote is for ${REMOTE_COMMANDS.join(', ')}; run ${command} on the node's own host`);
  }
  let t: Target;
  try {
    t = controlTarget(env, remote);
    const tlsFiles = readLaunchEnv(env).controlTls;
    if (!('path' in t.endpoint) && tlsFiles.caFile !== undefined) {
      const { loadTlsClientConfig } = await import('./control-tls.js'); // node:tls only where it is used
      t.tls = loadTlsClientConfig(tlsFiles.caFile, tlsFiles.servername);
    }
  } catch (err) {
    if (err instanceof BootError) return fail(err.message);
    throw err;
  }
  try {
    return await dispatch(t, command, rest);
  } catch (err) {
    if (!(err instanceof ControlError)) throw err;
    if (err.code === 'ENOTRUNNING') return fail(notRunning(t));
    const lookup = (err.cause as NodeJS.ErrnoException | undefined)?.code;
    if (!('path' in t.endpoint) && (lookup === 'ENOTFOUND' || lookup === 'EAI_AGAIN')) {
      return fail(`${command}: cannot resolve ${t.endpoint.host} (${lookup}): add it to DNS or /etc/hosts, or pass --remote ADDRESS:PORT`);
    }
    // EAUTH is the cookie only when the node said so; a permission refusal (EACCES) or an answer
    // that did not prove the cookie (a relay) says what happened instead
    if (err.code === 'EAUTH' && err.message === 'wrong cookie') {
      return fail(`Node ${t.nodeName} refused the connection: wrong cookie (ours is from ${t.cookie.source}); use the node's cookie`);
    }
    return fail(command === 'eval' ? err.message : `${command}: ${err.message}`);
  }
}

/** "Not running", as the target was named: a local node, a remote port, or a node named on another host. */
function notRunning(t: Target): string {
  if ('path' in t.endpoint) return `Node ${t.nodeName} is not running!`;
  const where = describeEndpoint(t.endpoint);
  return where === t.nodeName ? `No node answers on ${where} (is NODEREL_CONTROL_PORT set on it?)` : `Node ${t.nodeName} is not running, or no control port answers on ${where} (is NODEREL_CONTROL_PORT set on it?)`;
}

async function dispatch(t: Target, command: string, args: string[]): Promise<number> {
  switch (command) {
    case 'ping': {
      const answer = await request(t, 'ping', [], 10_000);
      const degraded = typeof answer === 'object' && answer !== null ? (answer as { degraded?: unknown }).degraded : undefined;
      if (degraded !== undefined) {
        writeAll(2, `Node ${t.nodeName} answers but is degraded: ${String(degraded)}\n`);
        return PING_DEGRADED;
      }
      out('pong');
      return 0;
    }
    case 'status':
      return printStatus(await request(t, 'status'), args.includes('--json'));
    case 'eval': {
      // the node stops the evaluation at the limit (synchronous code too) and keeps serving
      const { value, rest } = parseFlag(args, '--timeout');
      const timeoutS = value === undefined ? EVAL_TIMEOUT_S : Number(value);
      if (!Number.isFinite(timeoutS) || timeoutS <= 0) return fail(`eval: --timeout must be a number of seconds, found ${JSON.stringify(value)}`);
      if (rest.length === 0) return fail('eval: no expression given; usage: eval [--timeout SECONDS] EXPR');
      out(String(await request(t, 'eval', [rest.join(' '), timeoutS * 1000], timeoutS * 1000 + 10_000)));
      return 0;
    }
    case 'stop':
      return stopNode(t, args);
    case 'restart':
    case 'reload':
    case 'reopen_logs':
      out(String(await request(t, command, [], 10 * 60_000)));
      return 0;
    case 'attach':
    case 'remote_console': {
      // each input's time limit in the node (synchronous code included)
      const { value } = parseFlag(args, '--timeout');
      const timeoutS = value === undefined ? EVAL_TIMEOUT_S : Number(value);
      if (!Number.isFinite(timeoutS) || timeoutS <= 0) return fail(`${command}: --timeout must be a number of seconds, found ${JSON.stringify(value)}`);
      return openConsole(t, command, timeoutS * 1000);
    }
    default:
      return fail(`unknown control command ${command}`);
  }
}

function printCookie(args: string[], env: NodeJS.ProcessEnv): number {
  try {
    const r = args.includes('--ini') ? readIniCookie(cookieOptions(env)) : resolveCookie(cookieOptions(env));
    writeAll(2, `cookie from ${r.source}\n`);
    out(r.cookie);
    return 0;
  } catch (err) {
    if (err instanceof BootError) return fail(err.message);
    throw err;
  }
}

interface Status {
  node: string;
  release: string;
  version: string;
  pid: number;
  uptime_s: number;
  stage: string;
  in_flight: number;
  apps: string[];
  memory: Record<string, number>;
  workers: { index: number; pid: number; state: string }[];
  spawn_loop?: number[];
  workers_target?: number;
  degraded?: string;
  log?: { file: string | null; dropped_lines: number; unreported_lines: number; last_error?: string };
}

function printStatus(result: unknown, json: boolean): number {
  if (json) {
    out(JSON.stringify(result, null, 2));
    return 0;
  }
  const s = result as Status;
  const mib = (n: number | undefined) => `${((n ?? 0) / 1048576).toFixed(1)} MiB`;
  out(
    [
      `node:      ${s.node}`,
      `release:   ${s.release} ${s.version}`,
      `pid:       ${s.pid}`,
      `uptime:    ${s.uptime_s} s`,
      `stage:     ${s.stage}${s.degraded ? ` (DEGRADED: ${s.degraded})` : ''}`,
      `in flight: ${s.in_flight}`,
      `apps:      ${s.apps.join(', ') || '(none)'}`,
      `memory:    rss ${mib(s.memory.rss)}, heap ${mib(s.memory.heapUsed)} of ${mib(s.memory.heapTotal)}`,
      `workers:   ${describeWorkers(s)}`,
      // lines a full disk kept out of the log (they are noted in it once space returns)
      ...(s.log?.dropped_lines
        ? [`log:       ${s.log.dropped_lines} lines could not be written${s.log.last_error ? ` (${s.log.last_error})` : ''}${s.log.unreported_lines ? `, ${s.log.unreported_lines} not yet noted in ${s.log.file ?? 'the log'}` : ''}`]
        : []),
    ].join('\n'),
  );
  return 0;
}

/** The human status's workers line: a single process, or a master's pool against its size. */
function describeWorkers(s: Status): string {
  if (s.workers_target === undefined && s.workers.length === 0) return 'none (single process)';
  const ready = s.workers.filter((w) => w.state === 'ready').length;
  const loop = s.spawn_loop?.length ? `; spawn loop, not respawned: ${s.spawn_loop.join(', ')}` : '';
  const list = s.workers.length ? ` ${JSON.stringify(s.workers)}` : '';
  return `${ready} of ${s.workers_target ?? s.workers.length} ready${loop}${list}`;
}

/**
 * One graceful shutdown stage (like TERM), then wait until the OS process is gone. `--timeout`
 * bounds the whole command: connecting, the handshake and the node's answer included (a node
 * whose event loop is blocked never answers).
 */
async function stopNode(t: Target, args: string[]): Promise<number> {
  const started = Date.now();
  const { value } = parseFlag(args, '--timeout');
  const timeoutS = value === undefined ? 60 : Number(value);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) return fail(`stop: --timeout must be a number of seconds, found ${JSON.stringify(value)}`);
  const deadline = started + timeoutS * 1000;
  let r: { pid: number; stage: string; in_flight: number };
  try {
    r = (await request(t, 'stop', [], deadline - Date.now())) as typeof r;
  } catch (err) {
    if (!(err instanceof ControlError) || err.code !== 'ETIMEOUT') throw err;
    const pid = t.runDir === undefined ? undefined : readPidFile(join(t.runDir, 'node.pid'));
    return fail(
      `Node ${t.nodeName}${pid === undefined ? '' : ` (pid ${pid})`} did not answer the stop request within ${timeoutS}s: its event loop is blocked or it is overloaded; ` +
        `nothing was asked of it. Try again, or send it TERM (${pid === undefined ? 'kill -TERM <pid>' : `kill -TERM ${pid}`}; the 4th TERM exits at once)`,
    );
  }
  while (isAlive(r.pid)) {
    if (Date.now() >= deadline) {
      return fail(
        `Node ${t.nodeName} (pid ${r.pid}) did not stop within ${timeoutS}s (stage ${r.stage}, ${r.in_flight} in flight when asked); ` +
          'run stop again to move to the next stage (refuse new work, then hang up)',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.min(5, deadline - Date.now()))));
  }
  return 0;
}

/** attach / remote_console: the terminal in raw mode, piped to a REPL inside the node. */
async function openConsole(t: Target, command: 'attach' | 'remote_console', timeoutMs: number): Promise<number> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const socket = await controlStream({
    endpoint: t.endpoint,
    cookie: t.cookie.cookie,
    ...(t.tls ? { tls: t.tls } : {}),
    command,
    args: [stdout.columns ?? 80, stdout.rows ?? 24, timeoutMs],
  });
  const what = command === 'attach' ? 'Attached to' : 'Remote console on';
  process.stderr.write(`${what} ${t.nodeName}. Ctrl-D ${command === 'attach' ? 'detaches; the node keeps running' : 'leaves'}.\n`);
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  stdin.pipe(socket);
  socket.pipe(stdout);
  return new Promise((resolve) => {
    socket.on('close', () => {
      // a cut or tampered stream: say so
      if (socket.errored) process.stderr.write(`\n${command}: ${socket.errored.message}\n`);
      if (raw) stdin.setRawMode(false);
      stdin.unpipe(socket);
      stdin.pause();
      process.stderr.write(`\n${command === 'attach' ? 'Detached from' : 'Left'} ${t.nodeName}.\n`);
      resolve(0);
    });

  });
}
