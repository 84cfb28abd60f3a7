/**
 * The control channel: commands (`ping`, `stop`, `status`, `eval`, `attach`, ...)
 * reach a running node over a per-node Unix socket, mode 0600 in a 0700 directory, after a
 * mutual authentication on the cookie (below). The server lives in the node; the client in every command.
 * A node may also listen on a TCP port (`NODEREL_CONTROL_PORT`), the same protocol, so that
 * `eval` and `remote_console` reach it from another host: there the cookie alone admits a
 * peer and nothing is encrypted (as with Erlang's distribution), unless the port has a
 * certificate (`NODEREL_CONTROL_TLS_CERT`/`_KEY`): then it speaks only TLS, the same protocol
 * inside, and a client given the CA file (`NODEREL_CONTROL_TLS_CA`) verifies the node first
 * (control-tls.ts).
 *
 * Protocol, version 2: newline-delimited JSON, one object per line, UTF-8. Both ends prove the
 * cookie, in the same two round trips as before (no extra one for mutual authentication):
 *
 *   server -> client  {"v":2,"nonce":"<Ns: base64 of 32 random bytes>"}
 *   client -> server  {"nonce":"<Nc: base64 of 32 random bytes>",
 *                      "msg":"<JSON text of {"command":"<name>","args":[...]}>",
 *                      "mac":"<base64 HMAC-SHA256(K, "noderel-c2s:0:" + msg)>"}
 *   server -> client  an authenticated answer {"msg":"<JSON text of the answer>",
 *                      "mac":"<base64 HMAC-SHA256(K, "noderel-s2c:0:" + msg)>"}, the answer one of
 *     {"ok":true,"result":<json>}                          a request command's result; then close
 *     {"ok":true,"stream":true}                            a stream command (attach, remote_console):
 *                                                          from here both ways carry MAC'd frames
 *                                                          (sealed-stream.ts), the handler's bytes
 *     {"ok":false,"code":"EUNKNOWN","error":"unknown command x; known: ..."}
 *     {"ok":false,"code":"ECOMMAND","error":"<message>"}   the handler threw
 *     {"ok":false,"code":"EPROTO","error":"..."}           args not an array, no command
 *   or, to a peer that did not prove the cookie, a plain refusal (then close):
 *     {"ok":false,"code":"EAUTH","error":"wrong cookie"}   a wrong MAC: wrong cookie, or a message
 *                                                          changed on the way; the node logs it
 *     {"ok":false,"code":"EPROTO","error":"..."}           a malformed or oversized first line
 *     {"ok":false,"code":"ETIMEOUT","error":"..."}         no answer to the greeting in time
 *     {"ok":false,"code":"EBUSY","error":"..."}            too many unauthenticated connections
 *
 *   where K = HMAC-SHA256(cookie, "noderel-session:" + Nc + ":" + Ns), the session key.
 *
 * The request's MAC proves the cookie over both nonces and the exact command, so a relay without
 * the cookie can neither swap nor alter a command (the MAC breaks), nor replay one (the node's
 * nonce is fresh), and the node never runs anything before checking it (constant-time compare; a
 * digest of the wrong length is a wrong cookie), so an unauthenticated peer learns nothing. The
 * answer's MAC proves the node has the cookie and binds the answer to this session and request
 * (the client's nonce is fresh): the client trusts no result, and starts no stream, from a peer
 * that did not prove it. The labels ("c2s"/"s2c") and sequence numbers (0: one request and one
 * answer per connection) keep a message from being reflected or moved. A plain refusal is
 * believed only as a failure: a relay can always drop a connection, never turn it into success.
 * After a stream ack every byte either way is in a frame MAC'd under K with its own sequence
 * number (sealed-stream.ts), so a relay can neither inject, alter, reorder nor cut console
 * input or output unnoticed.
 *
 * A plain client on a TCP port opens with five blank lines, which a server skips before the
 * answer line; a TLS port takes them for a bad handshake and hangs up at once, so that the
 * client says "this port speaks TLS" instead of waiting for a greeting that never comes.
 *
 * Compatibility: the launcher runs the control client of the release's own noderel
 * (lib/noderel-<vsn>/ctl.js), and an upgrade is between releases built by the same noderel, so
 * both ends always speak the same version; there is no shim for v1 (a v1 peer gets EPROTO).
 *
 * Guessing is slowed (per server): a source (TCP peer address; all local processes for the Unix
 * socket) that failed to authenticate waits for its refusal, 50 ms doubling per recent failure up
 * to 5 s (a success from it, or a minute without failures, forgets them); a source may hold at
 * most 32 unauthenticated connections (256 in all), more are refused at once with EBUSY. Each
 * log window (60 s) reports its first refusal in full and the rest in one summary line.
 *
 * The answer line is bounded (64 KiB, however it arrives) and must come within `authTimeoutMs`
 * (10 s). A request client keeps its side open until the reply (no half-close: the server then
 * ends too). Bytes a client sends right after its answer line (a stream command's first input)
 * are kept for the stream handler; bytes a server sends right after the stream ack are kept for
 * the client.
 *
 * The client path (`ping` is measured against `node -e 0`) imports only node:net, node:fs,
 * node:stream, digest.js (HMAC-SHA256 without node:crypto) and errors.js, and does no work at
 * load; node:tls comes in only with a CA file.
 */
import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TlsClientConfig, TlsServerConfig } from './control-tls.js';
import { constantTimeEqual, hmacSha256, randomBytes } from './digest.js';
import { BootError } from '../errors.js';
import { SealedStream } from './sealed-stream.js';

export const CONTROL_PROTOCOL_VERSION = 2;
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
/** A stream command's handler: `stream` is a plain Duplex whose bytes travel in MAC'd frames (sealed-stream.ts). */
export type StreamHandler = (stream: Duplex, args: unknown[]) => void;

/** What a control server answers, and to whom: the same on the Unix socket and the TCP port. */
export interface ControlService {
  cookie: string;
  /** Commands answered with one result: `{"ok":true,"result":...}`, then close. */
  requests: Record<string, RequestHandler>;
  /** Commands that take over the socket after `{"ok":true,"stream":true}`. */
  streams?: Record<string, StreamHandler>;
  /**
   * A peer was refused before authenticating (wrong cookie, malformed first line, over the cap);
   * `info` is the log line: the first refusal of a window, then one summary line for the rest.
   */
  onAuthFailure?(info: string): void;
  /** How long a peer has to answer the challenge (default 10 s). */
  authTimeoutMs?: number;
  /** Guessing limits (defaults in the header); tests shorten them. */
  guard?: Partial<GuardOptions>;
}

export interface GuardOptions {
  /** The refusal of a source's first recent failure waits this long; each further one doubles it. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A source's failures are forgotten after this long without one. */
  forgetMs: number;
  /** Unauthenticated connections one source may hold, and all sources together. */
  maxPendingPerSource: number;
  maxPending: number;
  /** Each window reports its first refusal in full and the rest in one summary line. */
  logWindowMs: number;
  /** Told each refusal's delay, as it is decided (for tests: what was decided, not how long it took). */
  onDelay?: (source: string, delayMs: number) => void;
}

const DEFAULT_GUARD: GuardOptions = {
  baseDelayMs: 50,
  maxDelayMs: 5_000,
  forgetMs: 60_000,
  maxPendingPerSource: 32,
  maxPending: 256,
  logWindowMs: 60_000,
};

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

export type ControlErrorCode = 'ENOTRUNNING' | 'EAUTH' | 'EACCES' | 'EBUSY' | 'EUNKNOWN' | 'ECOMMAND' | 'ETIMEOUT' | 'EPROTO' | 'ETLS';

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
  /** For a TCP endpoint: connect with TLS and verify the node's certificate (control-tls.ts). */
  tls?: TlsClientConfig;
}

// ---------------------------------------------------------------------------------------------
// server

export async function startControlServer(o: ControlServerOptions): Promise<ControlServer> {
  checkSocketPath(o.socketPath);
  prepareSocketDir(dirnameOf(o.socketPath));
  if (o.takeover) removeSocketFile(o.socketPath);
  else await removeStaleSocket(o.socketPath);

  const listening = await listenControl({ path: o.socketPath }, o, 'the control socket');
  chmodSync(o.socketPath, 0o600);
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

/**
 * The same control server on a TCP port (`NODEREL_CONTROL_PORT`), for clients on other hosts;
 * with `tls` (the node's certificate and key), only TLS clients are served.
 */
export async function startControlTcpServer(o: ControlService & { host: string; port: number; tls?: TlsServerConfig }): Promise<ControlTcpServer> {
  let factory: ServerFactory | undefined;
  if (o.tls) {
    const tlsConfig = o.tls;
    const { createTlsControlServer } = await import('./control-tls.js'); // node:tls only where it is used
    factory = (onConnection, guard, where) =>
      createTlsControlServer(tlsConfig, o.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS, onConnection, (err, socket) => {
        const source = socket.remoteAddress ?? 'unknown';
        const why = /wrong version number|http request|unknown protocol|packet length/i.test(err.message) ? 'not TLS' : 'TLS handshake failed';
        guard.note(source, why, `refused a control connection from ${source} on ${where()}: ${why} (${firstLine(err.message)})`);
        socket.destroy();
      });
  }
  const listening = await listenControl({ host: o.host, port: o.port }, o, 'the control port', factory);
  const { address, port } = listening.server.address() as AddressInfo;
  return { host: address, port, close: () => listening.close() };
}

/** A server that calls `onConnection` with each connection ready for the protocol (a TLS one: after its handshake). */
type ServerFactory = (onConnection: (socket: Socket) => void, guard: Guard, where: () => string) => Server;

/** A listening control server at `endpoint`, serving every connection with `o`; close() ends them all. */
async function listenControl(
  endpoint: ControlEndpoint,
  o: ControlService,
  what: string,
  factory: ServerFactory = (onConnection) => createServer(onConnection),
): Promise<{ server: Server; close(before?: () => void): Promise<void> }> {
  const connections = new Set<Socket>();
  const guard = new Guard(o.guard, o.onAuthFailure);
  // what the log calls this server: the port bound, once it is (port 0 lets the OS choose)
  let where = describeEndpoint(endpoint);
  const server = factory(
    (socket) => {
      connections.add(socket);
      socket.on('close', () => connections.delete(socket));
      // A peer vanishing mid-exchange must never take the node down; stream handlers add their own.
      socket.on('error', () => {});
      serveConnection(socket, o, where, guard);
    },
    guard,
    () => where,
  );
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

/**
 * Slows cookie guessing for one server: a growing delay before each refusal of a source that keeps
 * failing, a cap on unauthenticated connections (per source and in all), and one log line per
 * refusal window plus one summary line for the rest of it.
 */
class Guard {
  private readonly failures = new Map<string, { count: number; last: number }>();
  private readonly pending = new Map<string, number>();
  private pendingTotal = 0;
  private window: { more: number; reasons: Map<string, number>; sources: Map<string, number> } | undefined;
  readonly o: GuardOptions;

  constructor(
    opts: Partial<GuardOptions> | undefined,
    private readonly report: ((info: string) => void) | undefined,
  ) {
    this.o = { ...DEFAULT_GUARD, ...opts };
  }

  /** Takes an unauthenticated slot for `source`; false when over a cap (the caller refuses). */
  admit(source: string): boolean {
    const held = this.pending.get(source) ?? 0;
    if (held >= this.o.maxPendingPerSource || this.pendingTotal >= this.o.maxPending) return false;
    this.pending.set(source, held + 1);
    this.pendingTotal++;
    return true;
  }

  /** Gives the slot back (once per admitted connection). */
  leave(source: string): void {
    const held = (this.pending.get(source) ?? 1) - 1;
    if (held <= 0) this.pending.delete(source);
    else this.pending.set(source, held);
    this.pendingTotal--;
  }

  /** A failed authentication from `source`: reported (or counted), and how long its refusal waits. */
  fail(source: string, reason: string, info: string): number {
    const now = Date.now();
    let entry = this.failures.get(source);
    if (!entry || now - entry.last > this.o.forgetMs) entry = { count: 0, last: now };
    entry.count++;
    entry.last = now;
    this.failures.set(source, entry);
    if (this.failures.size > 10_000) this.forgetOld(now);
    this.note(source, reason, info);
    const delay = Math.min(this.o.baseDelayMs * 2 ** Math.min(entry.count - 1, 30), this.o.maxDelayMs);
    this.o.onDelay?.(source, delay);
    return delay;
  }

  /** A refusal without a failure count (over the cap): reported like the others. */
  note(source: string, reason: string, info: string): void {
    if (!this.window) {
      this.window = { more: 0, reasons: new Map(), sources: new Map() };
      const seconds = this.o.logWindowMs / 1000;
      setTimeout(() => {
        const w = this.window;
        this.window = undefined;
        if (!w || w.more === 0) return;
        const reasons = [...w.reasons].map(([r, n]) => `${r}: ${n}`).join(', ');
        const top = [...w.sources].sort((x, y) => y[1] - x[1]);
        const sources = top.slice(0, 3).map(([src, n]) => `${src} (${n})`).join(', ') + (top.length > 3 ? `, and ${top.length - 3} more` : '');
        this.emit(`refused ${w.more} more control connections in the last ${seconds} s (${reasons}) from ${sources}`);
      }, this.o.logWindowMs).unref();
      this.emit(info);
      return;
    }
    const w = this.window;
    w.more++;
    w.reasons.set(reason, (w.reasons.get(reason) ?? 0) + 1);
    w.sources.set(source, (w.sources.get(source) ?? 0) + 1);
  }

  /** `source` proved the cookie: its failures are forgotten. */
  succeed(source: string): void {
    this.failures.delete(source);
  }

  private forgetOld(now: number): void {
    for (const [src, e] of this.failures) if (now - e.last > this.o.forgetMs) this.failures.delete(src);
  }

  private emit(info: string): void {
    try {
      this.report?.(info);
    } catch {
      // the logger's problem must not become the control channel's
    }
  }
}

function serveConnection(socket: Socket, o: ControlService, where: string, guard: Guard): void {
  const source = socket.remoteAddress ?? 'local processes';
  if (!guard.admit(source)) {
    guard.note(source, 'over the cap', `refused a control connection from ${describePeer(socket, where)}: too many unauthenticated connections`);
    finish(socket, { ok: false, code: 'EBUSY', error: 'too many unauthenticated control connections; try again later' });
    return;
  }
  let holding = true;
  const leave = (): void => {
    if (!holding) return;
    holding = false;
    guard.leave(source);
  };
  socket.on('close', leave);

  const reader = new LineReader(socket);
  const authTimeoutMs = o.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS;
  let answered = false;
  /** A plain (unauthenticated) refusal; a failure (`reason`) waits for the source's delay first. */
  const refuse = (code: string, error: string, failure?: { reason: string; info: string }): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    reader.release();
    if (failure === undefined) return finish(socket, { ok: false, code, error });
    const delay = guard.fail(source, failure.reason, failure.info);
    socket.resume(); // drop what it still sends; the slot stays taken until it goes
    setTimeout(() => finish(socket, { ok: false, code, error }), delay).unref();
  };
  const timer = setTimeout(
    () => refuse('ETIMEOUT', `no answer to the challenge within ${authTimeoutMs} ms`),
    authTimeoutMs,
  );

  const serverNonce = randomBytes(32).toString('base64');
  socket.write(JSON.stringify({ v: CONTROL_PROTOCOL_VERSION, nonce: serverNonce }) + '\n');

  // A plain TCP client opens with a few blank lines (a TLS port refuses them at once): skipped.
  const answerLine = async (): Promise<string> => {
    for (;;) {
      const line = await reader.next(MAX_AUTH_LINE_BYTES);
      if (line !== '') return line;
    }
  };
  answerLine().then(
    (line) => {
      if (answered) return;
      const checked = checkAnswer(line, o.cookie, serverNonce, describePeer(socket, where));
      if ('refused' in checked) return refuse(...checked.refused);
      const { key, request, command } = checked;
      // authenticated: from here every answer is MAC'd, and the slot is free
      answered = true;
      clearTimeout(timer);
      leave();
      guard.succeed(source);
      const answer = (reply: object): void => {
        reader.release();
        finishLine(socket, seal(key, reply));
      };
      if (!isObject(request) || command === undefined) return answer({ ok: false, code: 'EPROTO', error: 'no command given' });
      const args = request.args ?? [];
      if (!Array.isArray(args)) return answer({ ok: false, code: 'EPROTO', error: `args of ${command} must be a JSON array` });
      runCommand({ socket, reader, key, where, answer }, o, command, args);
    },
    (err: unknown) => {
      if (answered) return; // refused already (timeout): its line is on the way out
      if (err instanceof LineTooLong) {
        refuse('EPROTO', `first line longer than ${MAX_AUTH_LINE_BYTES} bytes`, {
          reason: 'oversized',
          info: `refused a control connection: oversized first line from ${describePeer(socket, where)}`,
        });
      } else {
        // the peer left before answering: nothing to say to it
        answered = true;
        clearTimeout(timer);
        socket.destroy();
      }
    },
  );
}

type Refusal = [code: string, error: string, failure: { reason: string; info: string }];

/**
 * The client's answer to the challenge (`serverNonce`): the session key, the request and its
 * command when the MAC proves the cookie, else the refusal (a malformed line, a wrong cookie).
 */
function checkAnswer(line: string, cookie: string, serverNonce: string, peer: string): { refused: Refusal } | { key: Buffer; request: unknown; command: string | undefined } {
  const malformed = { reason: 'malformed', info: `refused a control connection: malformed first line from ${peer}` };
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return { refused: ['EPROTO', 'expected a JSON object answering the challenge', malformed] };
  }
  if (!isObject(msg) || typeof msg.nonce !== 'string' || typeof msg.msg !== 'string') {
    return { refused: ['EPROTO', `expected {"nonce","msg","mac"} (control protocol v${CONTROL_PROTOCOL_VERSION})`, malformed] };
  }
  const key = sessionKey(cookie, msg.nonce, serverNonce);
  let request: unknown;
  try {
    request = JSON.parse(msg.msg);
  } catch {
    request = undefined;
  }
  const command = isObject(request) && typeof request.command === 'string' ? request.command : undefined;
  if (typeof msg.mac !== 'string' || !sameDigest(msg.mac, macOf(key, C2S, 0, msg.msg))) {
    return {
      refused: ['EAUTH', 'wrong cookie', {
        reason: 'wrong cookie',
        info: `refused a control connection: wrong cookie from ${peer}${command === undefined ? '' : ` (command ${JSON.stringify(command)})`}`,
      }],
    };
  }
  return { key, request, command };
}

/** An authenticated connection: its socket, its reader, the session key, and how to answer it once (MAC'd). */
interface Session {
  readonly socket: Socket;
  readonly reader: LineReader;
  readonly key: Buffer;
  readonly where: string;
  answer(reply: object): void;
}

/** Runs an authenticated command: a request (one answer), a stream (sealed frames), or unknown. */
function runCommand(session: Session, o: ControlService, command: string, args: unknown[]): void {
  const { socket, reader, key, where } = session;
  const requestHandler = ownEntry(o.requests, command);
  const stream = ownEntry(o.streams ?? {}, command);
  if (requestHandler) {
    reader.release();
    socket.resume(); // drop further input; notice a peer that leaves while the handler runs
    void runRequest(socket, key, command, requestHandler, args);
  } else if (stream) {
    socket.write(seal(key, { ok: true, stream: true }) + '\n');
    reader.release();
    const sealed = new SealedStream(socket, key, S2C, C2S, describePeer(socket, where));
    sealed.on('error', () => {}); // a cut or tampered stream ends here; handlers add their own
    try {
      stream(sealed, args);
    } catch {
      sealed.destroy();
    }
  } else {
    const known = [...Object.keys(o.requests), ...Object.keys(o.streams ?? {})].sort().join(', ');
    session.answer({ ok: false, code: 'EUNKNOWN', error: `unknown command ${command}; known: ${known}` });
  }
}

async function runRequest(socket: Socket, key: Buffer, command: string, handler: RequestHandler, args: unknown[]): Promise<void> {
  let reply: object;
  try {
    const result = await handler(args);
    try {
      JSON.stringify(result);
      reply = { ok: true, result: result === undefined ? null : result };
    } catch (err) {
      reply = { ok: false, code: 'ECOMMAND', error: `the result of ${command} is not JSON: ${messageOf(err)}` };
    }
  } catch (err) {
    reply = { ok: false, code: 'ECOMMAND', error: messageOf(err) };
  }
  finishLine(socket, seal(key, reply));
}

/** Sends the last line, then closes: reads (and drops) what the peer still sends until it goes. */
function finish(socket: Socket, reply: object): void {
  finishLine(socket, JSON.stringify(reply));
}

function finishLine(socket: Socket, line: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(line + '\n');
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

function describePeer(socket: Socket, where: string): string {
  return socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort} on ${where}` : `a local process on ${where}`;
}

/** The socket's directory: created 0700, or tightened to 0700 when it is ours and looser. */
function prepareSocketDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new BootError('ESOCKET', `cannot create the control socket directory ${dir}: ${messageOf(err)}`, { cause: err });
  }
  const stat = statSync(dir);
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
  chmodSync(dir, 0o700);
}

/**
 * Removes a socket file left by a node that died (the caller holds the node lock, so it should be
 * stale); a file that is not a socket stays. As a guard against a lock gone wrong, a socket that
 * still answers is never taken over.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const stat = lstatSync(socketPath, { throwIfNoEntry: false });
  if (!stat) return;
  if (!stat.isSocket()) {
    throw new BootError('ESOCKET', `${socketPath} exists and is not a socket; move it away or set RELEASE_TMP elsewhere`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new BootError('ESOCKET', `another process is listening on the control socket ${socketPath}; is this node already running?`);
  }
  unlinkSync(socketPath);
}

function removeSocketFile(socketPath: string): void {
  try {
    const stat = lstatSync(socketPath, { throwIfNoEntry: false });
    if (stat?.isSocket()) unlinkSync(socketPath);
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
 * Starts a stream command; resolves with the authenticated stream, a Duplex whose bytes travel
 * MAC'd (sealed-stream.ts; any bytes the node sent right after its ack are readable first). The
 * caller owns it: a cut or tampered stream fails ('error', and `errored` once it is closed); end or destroy it.
 */
export async function controlStream(o: ControlClientOptions): Promise<Duplex> {
  const { socket, key } = await exchange(o, 'stream', o.timeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS);
  const stream = new SealedStream(socket, key, C2S, S2C, describeEndpoint(o.endpoint));
  // a failure before the caller listens must not crash it: `stream.errored` keeps it for 'close'
  stream.on('error', () => {});
  return stream;
}

/** Bytes a plain TCP client sends first: blank lines to a control server, not TLS to a TLS one (which then refuses at once). */
const PLAIN_PREAMBLE = '\n\n\n\n\n';

async function exchange(
  o: ControlClientOptions,
  mode: 'request' | 'stream',
  timeoutMs: number,
): Promise<{ socket: Socket; reply: Record<string, unknown>; key: Buffer }> {
  const e = o.endpoint;
  if ('path' in e) checkSocketPath(e.path);
  const where = describeEndpoint(e);
  const tlsConfig = 'path' in e ? undefined : o.tls;
  const tls = tlsConfig ? await import('./control-tls.js') : undefined; // node:tls only where it is used
  return new Promise((resolve, reject) => {
    let settled = false;
    let greeted = false;
    let socket: Socket;
    if ('path' in e) socket = connect(e.path);
    else if (tls && tlsConfig) socket = tls.connectTls(e.host, e.port, tlsConfig);
    else {
      socket = connect({ host: e.host, port: e.port });
      socket.write(PLAIN_PREAMBLE);
    }
    const reader = new LineReader(socket);
    // a plain client closed or reset before the greeting on a TCP port: most likely a TLS port
    const tlsHint = (): ControlError =>
      new ControlError('ETLS', `the node on ${where} closed the connection before its greeting: if its control port uses TLS, set NODEREL_CONTROL_TLS_CA to the CA file that signed its certificate`);
    const fail = (err: ControlError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error): void => {
      if (tls && tlsConfig && !greeted && isTlsFailure(err)) return fail(new ControlError('ETLS', tls.describeTlsError(err, where, tlsConfig), { cause: err }));
      if (!tlsConfig && 'port' in e && !greeted && (err as NodeJS.ErrnoException).code === 'ECONNRESET') return fail(tlsHint());
      fail(socketError(err, where));
    };
    const timer = setTimeout(
      () => fail(new ControlError('ETIMEOUT', `no answer from the node on ${where} within ${timeoutMs} ms (command ${o.command})`)),
      timeoutMs,
    );
    socket.on('error', onError);

    const run = async (): Promise<void> => {
      let first: string;
      try {
        first = await reader.next(MAX_AUTH_LINE_BYTES);
      } catch (err) {
        if (err instanceof LineClosed && !tlsConfig && 'port' in e) throw tlsHint();
        throw err;
      }
      greeted = true;
      const hello = parseLine(first);
      if (hello.ok === false) throw refusal(hello, where); // EBUSY: refused before any greeting
      if (hello.v !== CONTROL_PROTOCOL_VERSION || typeof hello.nonce !== 'string') {
        throw new ControlError('EPROTO', `the node on ${where} speaks another control protocol (expected v${CONTROL_PROTOCOL_VERSION})`);
      }
      const { key, reply } = await sendCommand(socket, reader, hello.nonce, o, mode, where);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      reader.release();
      resolve({ socket, reply, key });
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

/** After the node's greeting (`serverNonce`): the command, MAC'd, and the node's answer, checked. */
async function sendCommand(
  socket: Socket,
  reader: LineReader,
  serverNonce: string,
  o: ControlClientOptions,
  mode: 'request' | 'stream',
  where: string,
): Promise<{ key: Buffer; reply: Record<string, unknown> }> {
  const clientNonce = randomBytes(32).toString('base64');
  const key = sessionKey(o.cookie, clientNonce, serverNonce);
  const msg = JSON.stringify({ command: o.command, args: o.args ?? [] });
  socket.write(JSON.stringify({ nonce: clientNonce, msg, mac: macOf(key, C2S, 0, msg).toString('base64') }) + '\n');
  const sealed = parseLine(await reader.next(Infinity));
  // Only an answer MAC'd with this session's key comes from a node that has the cookie; a
  // plain line is believed only as a refusal (a relay can always drop us, never answer for it).
  if (typeof sealed.msg !== 'string' || typeof sealed.mac !== 'string') throw refusal(sealed, where);
  if (!sameDigest(sealed.mac, macOf(key, S2C, 0, sealed.msg))) {
    throw new ControlError('EAUTH', `the answer from ${where} does not prove the cookie (something between us and the node changed it, or it is not the node); nothing was trusted`);
  }
  const reply = parseLine(sealed.msg);
  if (reply.ok !== true) {
    throw new ControlError(replyCode(reply.code), typeof reply.error === 'string' ? reply.error : 'the node refused the command');
  }
  if (mode === 'request' && reply.stream === true) {
    throw new ControlError('EPROTO', `${o.command} is a stream command, not a request`);
  }
  if (mode === 'stream' && reply.stream !== true) {
    throw new ControlError('EPROTO', `${o.command} is a request command, not a stream`);
  }
  return { key, reply };
}

/** A plain (unauthenticated) line: a refusal before authentication, or a peer without the cookie. */
function refusal(line: Record<string, unknown>, where: string): ControlError {
  const code = line.code;
  if (line.ok === false && (code === 'EAUTH' || code === 'EPROTO' || code === 'ETIMEOUT' || code === 'EBUSY')) {
    return new ControlError(code, typeof line.error === 'string' ? line.error : 'the node refused the connection');
  }
  return new ControlError('EAUTH', `the node on ${where} answered without proving the cookie (is something between us and the node?); nothing was trusted`);
}

/** An error of the TLS layer (handshake, certificate), not of the connection. */
function isTlsFailure(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /CERT|SIGNATURE|ISSUER|UNABLE_TO/.test(code) || code === 'ECONNRESET';
}

function socketError(err: Error, where: string): ControlError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK') {
    return new ControlError('ENOTRUNNING', `no node is listening on ${where}`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    // the socket's mode (0600, in a 0700 directory) refused us, not the node: the cookie was never sent
    return new ControlError('EACCES', `permission denied connecting to ${where} (${code}): the control socket belongs to the user the node runs as; run the command as that user`, { cause: err });
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
  return code === 'EAUTH' || code === 'EBUSY' || code === 'EUNKNOWN' || code === 'ECOMMAND' || code === 'ETIMEOUT' || code === 'EPROTO'
    ? code
    : 'EPROTO';
}

// ---------------------------------------------------------------------------------------------
// shared

const C2S = 'noderel-c2s';
const S2C = 'noderel-s2c';

/** K = HMAC-SHA256(cookie, "noderel-session:" + client nonce + ":" + server nonce). */
function sessionKey(cookie: string, clientNonce: string, serverNonce: string): Buffer {
  return hmacSha256(cookie, `noderel-session:${clientNonce}:${serverNonce}`);
}

/** HMAC-SHA256(K, direction + ":" + sequence number + ":" + message text). */
function macOf(key: Buffer, direction: string, seq: number, msg: string): Buffer {
  return hmacSha256(key, `${direction}:${seq}:${msg}`);
}

/** An authenticated answer line (without its newline): the answer's JSON text and its MAC. */
function seal(key: Buffer, reply: object): string {
  const msg = JSON.stringify(reply);
  return JSON.stringify({ msg, mac: macOf(key, S2C, 0, msg).toString('base64') });
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

  constructor(private readonly socket: Socket) {
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
        // the limit holds however the line arrives: in one read or across many
        if ((nl >= 0 ? size + nl : size + chunk.length) > maxBytes) throw new LineTooLong();
        if (nl >= 0) {
          parts.push(chunk.subarray(0, nl));
          if (nl + 1 < chunk.length) this.pending = chunk.subarray(nl + 1);
          return Buffer.concat(parts).toString('utf8');
        }
        parts.push(chunk);
        size += chunk.length;
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

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
