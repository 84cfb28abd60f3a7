/**
 * The control channel (SPEC §6): commands (`ping`, `stop`, `status`, `eval`, `attach`, ...)
 * reach a running node over a per-node Unix socket, mode 0600 in a 0700 directory, after a
 * challenge-response on the cookie. The server lives in the node; the client in every command.
 * A node may also listen on a TCP port (`NODEREL_CONTROL_PORT`), the same protocol, so that
 * `eval` and `remote_console` reach it from another host: there the cookie alone admits a
 * peer, and nothing is encrypted (as with Erlang's distribution).
 *
 * Protocol, version 1: newline-delimited JSON, one object per line, UTF-8.
 *
 *   server -> client  {"v":1,"challenge":"<base64 of 32 random bytes>"}
 *   client -> server  {"hmac":"<base64 HMAC-SHA256(key = cookie,
 *                                  message = "noderel-control-v1:" + challenge)>",
 *                      "command":"<name>","args":[...]}
 *   server -> client  one of
 *     {"ok":true,"result":<json>}                          a request command's result; then close
 *     {"ok":true,"stream":true}                            a stream command (attach, remote_console):
 *                                                          from here the socket is a raw duplex
 *                                                          owned by the command's handler
 *     {"ok":false,"code":"EAUTH","error":"wrong cookie"}   then close; the node logs it
 *     {"ok":false,"code":"EUNKNOWN","error":"unknown command x; known: ..."}
 *     {"ok":false,"code":"ECOMMAND","error":"<message>"}   the handler threw
 *     {"ok":false,"code":"EPROTO","error":"..."}           a malformed or oversized first line
 *     {"ok":false,"code":"ETIMEOUT","error":"..."}         no answer to the challenge in time
 *
 * The server checks the HMAC with a constant-time compare (a digest of the wrong length is a wrong
 * cookie) before it looks at the command, so an unauthenticated peer learns nothing. The answer
 * line is bounded (64 KiB) and must come within `authTimeoutMs` (10 s). A request client keeps
 * its side open until the reply (no half-close: the server then ends too). Bytes a client sends
 * right after its answer line (a stream command's first input) are kept for the stream handler;
 * bytes a server sends right after the stream ack are kept for the client.
 *
 * The client path (`ping` is measured against `node -e 0`) imports only node:net, node:fs,
 * digest.js (HMAC-SHA256 without node:crypto) and errors.js, and does no work at load.
 */
import fs from 'node:fs';
import net from 'node:net';
import { constantTimeEqual, hmacSha256, randomBytes } from './digest.js';
import { BootError } from './errors.js';

export const CONTROL_PROTOCOL_VERSION = 1;
const HMAC_CONTEXT = 'noderel-control-v1:';
/** The largest first line the server reads from an unauthenticated peer. */
const MAX_AUTH_LINE_BYTES = 64 * 1024;
const DEFAULT_AUTH_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const DEFAULT_STREAM_TIMEOUT_MS = 10_000;
/** After the server's last line, how long a peer that keeps the connection open is tolerated. */
const LINGER_MS = 5_000;
/** On close(), how long open connections get to finish before they are destroyed. */
const CLOSE_GRACE_MS = 1_000;
/** sun_path is 108 bytes on Linux (104 on macOS and the BSDs), the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

export type RequestHandler = (args: unknown[]) => unknown | Promise<unknown>;
export type StreamHandler = (socket: net.Socket, args: unknown[]) => void;

/** What a control server answers, and to whom: the same on the Unix socket and the TCP port. */
export interface ControlService {
  cookie: string;
  /** Commands answered with one result: `{"ok":true,"result":...}`, then close. */
  requests: Record<string, RequestHandler>;
  /** Commands that take over the socket after `{"ok":true,"stream":true}`. */
  streams?: Record<string, StreamHandler>;
  /** A peer was refused before authenticating (wrong cookie, malformed first line); `info` says how. */
  onAuthFailure?(info: string): void;
  /** How long a peer has to answer the challenge (default 10 s). */
  authTimeoutMs?: number;
}

export interface ControlServerOptions extends ControlService {
  socketPath: string;
  /**
   * Take the socket path over even while another process answers on it: a new master started
   * by USR2 replaces the old master's socket (the old one keeps serving its open connections).
   */
  takeover?: boolean;
}

export interface ControlServer {
  readonly socketPath: string;
  /**
   * Stops listening, ends open connections (destroyed after 1 s), removes the socket file
   * unless `keepFile` (it belongs to a successor that took the path over).
   */
  close(opts?: { keepFile?: boolean }): Promise<void>;
}

export type ControlErrorCode = 'ENOTRUNNING' | 'EAUTH' | 'EUNKNOWN' | 'ECOMMAND' | 'ETIMEOUT' | 'EPROTO';

/** What the client side reports: no node there, refused, or the command failed. */
export class ControlError extends Error {
  readonly code: ControlErrorCode;

  constructor(code: ControlErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ControlError';
    this.code = code;
  }
}

/** Where a control server listens: a node's Unix socket, or its TCP control port. */
export type ControlEndpoint = { readonly path: string } | { readonly host: string; readonly port: number };

/** The endpoint as messages name it: the socket's path, or host:port. */
export function describeEndpoint(e: ControlEndpoint): string {
  return 'path' in e ? e.path : `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}

/**
 * `PORT`, `HOST:PORT` or `[IPv6]:PORT` (the TCP control port's address, and `--remote`'s);
 * `defaultHost` when only a port is given. Throws a BootError naming `what` and the forms.
 */
export function parseHostPort(text: string, what: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const m = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new BootError('EADDRESS', `${what} is ${JSON.stringify(text)}: expected PORT, HOST:PORT or [IPv6]:PORT, with a port from 1 to 65535`);
  }
  return { host: m[1] ?? m[2] ?? defaultHost, port };
}

export interface ControlClientOptions {
  endpoint: ControlEndpoint;
  cookie: string;
  command: string;
  args?: unknown[];
  /** The whole exchange for a request (default 60 s); the handshake for a stream (default 10 s). */
  timeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// server

export async function startControlServer(o: ControlServerOptions): Promise<ControlServer> {
  checkSocketPath(o.socketPath);
  prepareSocketDir(dirnameOf(o.socketPath));
  if (o.takeover) removeSocketFile(o.socketPath);
  else await removeStaleSocket(o.socketPath);

  const listening = await listenControl({ path: o.socketPath }, o, 'the control socket');
  fs.chmodSync(o.socketPath, 0o600);
  return {
    socketPath: o.socketPath,
    close(closeOpts = {}) {
      return listening.close(() => {
        if (!closeOpts.keepFile) removeSocketFile(o.socketPath);
      });
    },
  };
}

export interface ControlTcpServer {
  /** The address and port it listens on (the port the OS chose, for port 0). */
  readonly host: string;
  readonly port: number;
  /** Stops listening and ends open connections (destroyed after 1 s). */
  close(): Promise<void>;
}

/** The same control server on a TCP port (`NODEREL_CONTROL_PORT`), for clients on other hosts. */
export async function startControlTcpServer(o: ControlService & { host: string; port: number }): Promise<ControlTcpServer> {
  const listening = await listenControl({ host: o.host, port: o.port }, o, 'the control port');
  const { address, port } = listening.server.address() as net.AddressInfo;
  return { host: address, port, close: () => listening.close() };
}

/** A listening control server at `endpoint`, serving every connection with `o`; close() ends them all. */
async function listenControl(
  endpoint: ControlEndpoint,
  o: ControlService,
  what: string,
): Promise<{ server: net.Server; close(before?: () => void): Promise<void> }> {
  const connections = new Set<net.Socket>();
  // what the log calls this server: the port bound, once it is (port 0 lets the OS choose)
  let where = describeEndpoint(endpoint);
  const server = net.createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    // A peer vanishing mid-exchange must never take the node down; stream handlers add their own.
    socket.on('error', () => {});
    serveConnection(socket, o, where);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen('path' in endpoint ? endpoint.path : { host: endpoint.host, port: endpoint.port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw new BootError('ESOCKET', `cannot listen on ${what} ${describeEndpoint(endpoint)}: ${messageOf(err)}`, { cause: err });
  });
  server.on('error', () => {});
  const bound = server.address();
  if (bound !== null && typeof bound === 'object') where = describeEndpoint({ host: bound.address, port: bound.port });

  let closing: Promise<void> | undefined;
  return {
    server,
    close(before) {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        before?.();
        for (const socket of connections) {
          socket.end();
          setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
        }
      });
      return closing;
    },
  };
}

function serveConnection(socket: net.Socket, o: ControlService, where: string): void {
  const reader = new LineReader(socket);
  const authTimeoutMs = o.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS;
  let answered = false;
  const refuse = (code: string, error: string, info?: string): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    reader.release();
    finish(socket, { ok: false, code, error });
    if (info !== undefined && o.onAuthFailure) {
      try {
        o.onAuthFailure(info);
      } catch {
        // the logger's problem must not become the control channel's
      }
    }
  };
  const timer = setTimeout(
    () => refuse('ETIMEOUT', `no answer to the challenge within ${authTimeoutMs} ms`),
    authTimeoutMs,
  );

  const challenge = randomBytes(32).toString('base64');
  socket.write(JSON.stringify({ v: CONTROL_PROTOCOL_VERSION, challenge }) + '\n');

  reader.next(MAX_AUTH_LINE_BYTES).then(
    (line) => {
      if (answered) return;
      const peer = describePeer(socket, where);
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        return refuse('EPROTO', 'expected a JSON object answering the challenge', `malformed first line from ${peer}`);
      }
      if (!isObject(msg)) {
        return refuse('EPROTO', 'expected a JSON object answering the challenge', `malformed first line from ${peer}`);
      }
      const command = typeof msg.command === 'string' ? msg.command : undefined;
      if (typeof msg.hmac !== 'string' || !sameDigest(msg.hmac, proof(o.cookie, challenge))) {
        return refuse('EAUTH', 'wrong cookie', `wrong cookie from ${peer}${command === undefined ? '' : ` (command ${JSON.stringify(command)})`}`);
      }
      if (command === undefined) return refuse('EPROTO', 'no command given');
      const args = msg.args ?? [];
      if (!Array.isArray(args)) return refuse('EPROTO', `args of ${command} must be a JSON array`);

      const request = ownEntry(o.requests, command);
      const stream = ownEntry(o.streams ?? {}, command);
      if (request) {
        answered = true;
        clearTimeout(timer);
        reader.release();
        socket.resume(); // drop further input; notice a peer that leaves while the handler runs
        void runRequest(socket, command, request, args);
      } else if (stream) {
        answered = true;
        clearTimeout(timer);
        socket.write(JSON.stringify({ ok: true, stream: true }) + '\n');
        reader.release();
        try {
          stream(socket, args);
        } catch {
          socket.destroy();
        }
      } else {
        const known = [...Object.keys(o.requests), ...Object.keys(o.streams ?? {})].sort().join(', ');
        refuse('EUNKNOWN', `unknown command ${command}; known: ${known}`);
      }
    },
    (err: unknown) => {
      if (answered) return; // refused already (timeout): its line is on the way out
      if (err instanceof LineTooLong) {
        refuse('EPROTO', `first line longer than ${MAX_AUTH_LINE_BYTES} bytes`, `oversized first line from ${describePeer(socket, where)}`);
      } else {
        // the peer left before answering: nothing to say to it
        answered = true;
        clearTimeout(timer);
        socket.destroy();
      }
    },
  );
}

async function runRequest(socket: net.Socket, command: string, handler: RequestHandler, args: unknown[]): Promise<void> {
  let line: string;
  try {
    const result = await handler(args);
    try {
      line = JSON.stringify({ ok: true, result: result === undefined ? null : result });
    } catch (err) {
      line = JSON.stringify({ ok: false, code: 'ECOMMAND', error: `the result of ${command} is not JSON: ${messageOf(err)}` });
    }
  } catch (err) {
    line = JSON.stringify({ ok: false, code: 'ECOMMAND', error: messageOf(err) });
  }
  finishLine(socket, line);
}

/** Sends the last line, then closes: reads (and drops) what the peer still sends until it goes. */
function finish(socket: net.Socket, reply: object): void {
  finishLine(socket, JSON.stringify(reply));
}

function finishLine(socket: net.Socket, line: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(line + '\n');
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

function describePeer(socket: net.Socket, where: string): string {
  return socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort} on ${where}` : `a local process on ${where}`;
}

/** The socket's directory: created 0700, or tightened to 0700 when it is ours and looser. */
function prepareSocketDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new BootError('ESOCKET', `cannot create the control socket directory ${dir}: ${messageOf(err)}`, { cause: err });
  }
  const stat = fs.statSync(dir);
  if (!stat.isDirectory()) {
    throw new BootError('ESOCKET', `${dir} is not a directory; the control socket needs a directory of its own`);
  }
  if ((stat.mode & 0o077) === 0) return;
  const mode = octal(stat.mode);
  if (stat.mode & 0o1000) {
    throw new BootError(
      'ESOCKET',
      `${dir} is a shared directory (mode ${mode}); the control socket needs a directory of its own, e.g. ${dir}/<node>`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new BootError(
      'ESOCKET',
      `${dir} is mode ${mode} and owned by uid ${stat.uid}, not this user (uid ${uid}); ` +
        `chmod 700 ${dir} as its owner or set RELEASE_TMP to a directory of this user's`,
    );
  }
  fs.chmodSync(dir, 0o700);
}

/**
 * Removes a socket file left by a node that died (the caller holds the node lock, so it should be
 * stale); a file that is not a socket stays. As a guard against a lock gone wrong, a socket that
 * still answers is never taken over.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const stat = fs.lstatSync(socketPath, { throwIfNoEntry: false });
  if (!stat) return;
  if (!stat.isSocket()) {
    throw new BootError('ESOCKET', `${socketPath} exists and is not a socket; move it away or set RELEASE_TMP elsewhere`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new BootError('ESOCKET', `another process is listening on the control socket ${socketPath}; is this node already running?`);
  }
  fs.unlinkSync(socketPath);
}

function removeSocketFile(socketPath: string): void {
  try {
    const stat = fs.lstatSync(socketPath, { throwIfNoEntry: false });
    if (stat?.isSocket()) fs.unlinkSync(socketPath);
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------------------------
// client

/** Runs a request command in the node at `endpoint`; resolves with its result. */
export async function controlRequest(o: ControlClientOptions): Promise<unknown> {
  const { socket, reply } = await exchange(o, 'request', o.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
  socket.destroy();
  return reply.result;
}

/**
 * Starts a stream command; resolves with the authenticated socket, now a raw duplex (any bytes
 * the node sent right after its ack are readable first). The caller owns it: add an 'error'
 * listener, and end or destroy it.
 */
export async function controlStream(o: ControlClientOptions): Promise<net.Socket> {
  const { socket } = await exchange(o, 'stream', o.timeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS);
  return socket;
}

function exchange(
  o: ControlClientOptions,
  mode: 'request' | 'stream',
  timeoutMs: number,
): Promise<{ socket: net.Socket; reply: Record<string, unknown> }> {
  const e = o.endpoint;
  if ('path' in e) checkSocketPath(e.path);
  const where = describeEndpoint(e);
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = 'path' in e ? net.connect(e.path) : net.connect({ host: e.host, port: e.port });
    const reader = new LineReader(socket);
    const fail = (err: ControlError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error): void => fail(socketError(err, where));
    const timer = setTimeout(
      () => fail(new ControlError('ETIMEOUT', `no answer from the node on ${where} within ${timeoutMs} ms (command ${o.command})`)),
      timeoutMs,
    );
    socket.on('error', onError);

    const run = async (): Promise<void> => {
      const hello = parseLine(await reader.next(MAX_AUTH_LINE_BYTES));
      if (hello.v !== CONTROL_PROTOCOL_VERSION || typeof hello.challenge !== 'string') {
        throw new ControlError('EPROTO', `the node on ${where} speaks another control protocol (expected v${CONTROL_PROTOCOL_VERSION})`);
      }
      const hmac = proof(o.cookie, hello.challenge).toString('base64');
      socket.write(JSON.stringify({ hmac, command: o.command, args: o.args ?? [] }) + '\n');
      const reply = parseLine(await reader.next(Infinity));
      if (reply.ok !== true) {
        throw new ControlError(replyCode(reply.code), typeof reply.error === 'string' ? reply.error : 'the node refused the command');
      }
      if (mode === 'request' && reply.stream === true) {
        throw new ControlError('EPROTO', `${o.command} is a stream command, not a request`);
      }
      if (mode === 'stream' && reply.stream !== true) {
        throw new ControlError('EPROTO', `${o.command} is a request command, not a stream`);
      }
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      reader.release();
      resolve({ socket, reply });
    };
    run().catch((err: unknown) => {
      if (err instanceof ControlError) fail(err);
      else if (err instanceof LineClosed) {
        fail(new ControlError('EPROTO', `the node on ${where} closed the connection before answering ${o.command}`));
      } else if (err instanceof LineTooLong) fail(new ControlError('EPROTO', `the node on ${where} sent an oversized greeting`));
      else fail(new ControlError('EPROTO', messageOf(err), { cause: err }));
    });
  });
}

function socketError(err: Error, where: string): ControlError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK') {
    return new ControlError('ENOTRUNNING', `no node is listening on ${where}`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new ControlError('EAUTH', `permission denied on ${where}; run the command as the user the node runs as`, { cause: err });
  }
  return new ControlError('EPROTO', `control connection to ${where} failed: ${err.message}`, { cause: err });
}

function parseLine(line: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ControlError('EPROTO', `the node sent a line that is not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  if (!isObject(value)) throw new ControlError('EPROTO', `the node sent ${JSON.stringify(line.slice(0, 80))}, not a JSON object`);
  return value;
}

function replyCode(code: unknown): ControlErrorCode {
  return code === 'EAUTH' || code === 'EUNKNOWN' || code === 'ECOMMAND' || code === 'ETIMEOUT' || code === 'EPROTO'
    ? code
    : 'EPROTO';
}

// ---------------------------------------------------------------------------------------------
// shared

/** HMAC-SHA256(cookie, "noderel-control-v1:" + challenge): what proves the cookie. */
function proof(cookie: string, challenge: string): Buffer {
  return hmacSha256(cookie, HMAC_CONTEXT + challenge);
}

function sameDigest(given: string, expected: Buffer): boolean {
  const buf = Buffer.from(given, 'base64');
  return constantTimeEqual(buf, expected);
}

/** Unix socket paths are short; say so with the fix instead of failing obscurely. */
function checkSocketPath(socketPath: string): void {
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new BootError(
      'ESOCKET',
      `the control socket path is ${bytes} bytes, over the ${MAX_SOCKET_PATH_BYTES}-byte limit of Unix sockets: ${socketPath}; ` +
        'set RELEASE_TMP to a shorter directory (e.g. /tmp/<name>)',
    );
  }
}

class LineTooLong extends Error {}
class LineClosed extends Error {}

/**
 * Reads newline-terminated lines off a socket in paused mode ('readable' + read()), taking no
 * more than it needs, so that `release()` can give the bytes after the last line back to the
 * socket (unshift) for whoever owns it next; a later 'data' listener or pipe() then sees them.
 */
class LineReader {
  private pending: Buffer | undefined;
  private wake: (() => void) | undefined;
  private ended = false;
  private released = false;
  private readonly onEvent = (): void => {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.onEvent();
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('readable', this.onEvent);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  /** The next line, without its newline; LineTooLong past `maxBytes`, LineClosed at the end. */
  async next(maxBytes: number): Promise<string> {
    const parts: Buffer[] = [];
    let size = 0;
    let chunk: Buffer | null | undefined = this.pending;
    this.pending = undefined;
    for (;;) {
      if (this.released) throw new LineClosed();
      if (chunk) {
        const nl = chunk.indexOf(10);
        if (nl >= 0) {
          parts.push(chunk.subarray(0, nl));
          if (nl + 1 < chunk.length) this.pending = chunk.subarray(nl + 1);
          return Buffer.concat(parts).toString('utf8');
        }
        parts.push(chunk);
        size += chunk.length;
        if (size > maxBytes) throw new LineTooLong();
      }
      chunk = this.socket.read() as Buffer | null;
      if (chunk === null) {
        if (this.ended || this.socket.destroyed) throw new LineClosed();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    }
  }

  /** Stops reading; unread bytes go back to the front of the socket's buffer. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.socket.off('readable', this.onEvent);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    if (this.pending && !this.socket.destroyed) this.socket.unshift(this.pending);
    this.pending = undefined;
    this.onEvent();
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function ownEntry<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

function dirnameOf(p: string): string {
  const slash = p.lastIndexOf('/');
  return slash < 0 ? '.' : slash === 0 ? '/' : p.slice(0, slash);
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
