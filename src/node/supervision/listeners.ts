/**
 * Listening TCP sockets held by noderel rather than by the apps, so that they outlive the
 * process that serves on them: a master binds each address once for all its workers (master.ts,
 * worker.ts), a single-process node binds its apps' addresses itself, and both hand them to the
 * new process that USR2 starts (the same socket, never closed: no connection refused meanwhile).
 */
import { _createServerHandle, isIP, Server } from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import type { Logger } from '../logs/log.js';

/** A bound TCP handle (net's internal TCP wrap), not yet listening. */
export type RawHandle = { close(cb?: () => void): void; getsockname?(out: Record<string, unknown>): number; listen?(backlog: number): number };

// net's internal bind, which Server#listen calls: a bound handle, or a negative errno.
declare module 'node:net' {
  export function _createServerHandle(address: string, port: number, addressType: number, fd?: number, flags?: number): RawHandle | number;
}

/** What a bound socket is for: one per distinct address, shared by every server that asks for it. */
export interface ListenAddress {
  host: string;
  port: number;
  /** `listen({ ipv6Only: true })`: an IPv6 socket that takes no IPv4 connections. */
  ipv6Only: boolean;
}

export interface ListenRequest extends ListenAddress {
  backlog?: number;
  callback?: () => void;
}

/** The name of an address among the held sockets (and in a USR2 hand-over): `host:port`, `/ipv6only` added. */
export function listenKey(a: ListenAddress): string {
  return `${a.host}:${a.port}${a.ipv6Only ? '/ipv6only' : ''}`;
}

/**
 * The TCP part of `server.listen(...)`'s many forms; undefined for pipes, handles and fds, and
 * for `exclusive` and `reusePort` listens: a socket of the server's own, which it binds itself
 * (with reusePort, the processes' sockets share the port and the kernel spreads connections).
 */
export function tcpListenArgs(args: unknown[]): ListenRequest | undefined {
  const callback = typeof args[args.length - 1] === 'function' ? (args[args.length - 1] as () => void) : undefined;
  const [first, second, third] = args;
  if (typeof first === 'object' && first !== null) {
    const o = first as { port?: unknown; host?: unknown; backlog?: unknown; path?: unknown; fd?: unknown; _handle?: unknown; exclusive?: unknown; reusePort?: unknown; ipv6Only?: unknown };
    if (o.path !== undefined || o.fd !== undefined || o._handle !== undefined || o.port === undefined) return undefined;
    if (o.exclusive === true || o.reusePort === true) return undefined;
    return { port: Number(o.port), host: typeof o.host === 'string' ? o.host : '', ipv6Only: o.ipv6Only === true, backlog: typeof o.backlog === 'number' ? o.backlog : undefined, callback };
  }
  if (first === undefined || typeof first === 'function') return { port: 0, host: '', ipv6Only: false, callback };
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    return { port: Number(first), host: typeof second === 'string' ? second : '', ipv6Only: false, backlog: typeof third === 'number' ? third : typeof second === 'number' ? second : undefined, callback };
  }
  return undefined;
}

/** libuv's UV_TCP_IPV6ONLY, the bind flag `listen({ ipv6Only: true })` passes. */
const UV_TCP_IPV6ONLY = 1;
/** libuv's EADDRINUSE: the negated errno. */
const UV_EADDRINUSE = -constants.errno.EADDRINUSE;

/** Binds (without listening) a TCP socket for an address as `server.listen` would: host '' is every address. */
export async function bindListener(a: ListenAddress): Promise<RawHandle> {
  const { host, port } = a;
  // as net.Server#listen: every address is '::' (with IPv4 too, unless ipv6Only), else 0.0.0.0
  const attempts: [string, number][] = host === '' ? (a.ipv6Only ? [['::', 6]] : [['::', 6], ['0.0.0.0', 4]]) : [[host, isIP(host) || 4]];
  if (host !== '' && isIP(host) === 0) {
    const { address, family } = await import('node:dns').then((dns) => dns.promises.lookup(host));
    attempts.splice(0, 1, [address, family]);
  }
  let errno = 0;
  for (const [address, type] of attempts) {
    const h = _createServerHandle(address, port, type, undefined, a.ipv6Only ? UV_TCP_IPV6ONLY : 0);
    if (typeof h === 'number') {
      errno = h;
      continue;
    }
    // libuv keeps a bind's EADDRINUSE until listen, and a process given this socket would then
    // listen on an unbound one: the kernel picks a random port. A socket not bound to the
    // port asked for is that error.
    const name: { port?: number } = {};
    if (port !== 0 && h.getsockname && (h.getsockname(name) !== 0 || name.port !== port)) {
      h.close();
      errno = UV_EADDRINUSE;
      continue;
    }
    return h;
  }
  throw listenError(errno, host, port);
}

/** The error a plain `server.listen(port, host)` gives: `listen EADDRINUSE: address already in use 127.0.0.1:8000`. */
function listenError(errno: number, host: string, port: number): Error {
  const [code, description] = getSystemErrorMap().get(errno) ?? [getSystemErrorName(errno), 'error'];
  return Object.assign(new Error(`listen ${code}: ${description} ${host || '::'}:${port}`), { code, errno, syscall: 'listen', address: host || '::', port });
}

/**
 * Routes this process's TCP listens through `get`, which supplies the bound socket for an
 * address; the server then listens and accepts on it. Other listens (pipes, handles) and those
 * made while `active()` is false go the usual way. `onListening` hears of each routed server.
 */
export function routeListens(
  get: (address: ListenAddress) => Promise<RawHandle>,
  opts: { active?: () => boolean; onListening?: (server: Server, key: string) => void } = {},
): void {
  const original = Server.prototype.listen;
  Server.prototype.listen = function listen(this: Server, ...args: unknown[]): Server {
    const req = tcpListenArgs(args);
    if (!req || (opts.active && !opts.active())) return (original as (...a: unknown[]) => Server).apply(this, args);
    if (req.callback) this.once('listening', req.callback);
    get({ host: req.host, port: req.port, ipv6Only: req.ipv6Only }).then(
      (handle) => {
        // A bind's EADDRINUSE shows only at listen (libuv defers it), and a listen on a handle
        // names no address: listen here first, so that the error says host:port as a plain
        // listen's would. Node's listen on the same socket then only sets its backlog again.
        const errno = typeof handle.listen === 'function' ? handle.listen(req.backlog ?? 511) : 0;
        if (errno < 0) {
          handle.close();
          process.nextTick(() => this.emit('error', listenError(errno, req.host, req.port)));
          return;
        }
        (original as (...a: unknown[]) => Server).call(this, { _handle: handle }, req.backlog);
        opts.onListening?.(this, listenKey(req));
      },
      (err: unknown) => this.emit('error', err),
    );
    return this;
  } as typeof Server.prototype.listen;
}

/**
 * A process started by USR2: the old one's listening sockets, sent over IPC before anything else
 * (`listener` messages with a handle each, then `handover-done`), go into `into`.
 */
export function adoptHandles(into: Map<string, RawHandle>, log: Logger, from: string): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      log.warn(`USR2: no socket hand-over from ${from} within 10 s; binding anew`);
      resolve();
    }, 10_000);
    const onMessage = (msg: { t?: string; key?: string }, handle: unknown): void => {
      if (msg.t === 'listener' && msg.key && handle) into.set(msg.key, handle as RawHandle);
      if (msg.t !== 'handover-done') return;
      clearTimeout(timer);
      process.off('message', onMessage);
      log.info(`took over ${into.size} listening socket(s) from ${from}`);
      resolve();
    };
    process.on('message', onMessage);
  });
}

/** The first file descriptor systemd passes (sd_listen_fds: SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;

/**
 * Socket activation: the listening TCP sockets systemd passed (`LISTEN_FDS`, from fd 3; the
 * launcher turns them into `NODEREL_LISTEN_FDS` when `LISTEN_PID` is its own pid, so that a
 * node `start` detaches takes them too) go into `into` under the key of the address each is bound
 * to, where the apps' listens find them instead of binding anew: the socket outlives every node
 * that serves on it, so a restart of the service refuses no connection (they wait in its
 * backlog). An fd that is not a TCP socket is logged and left alone. Returns how many were taken.
 */
export function adoptActivatedSockets(into: Map<string, RawHandle>, count: number, log: Logger): number {
  let taken = 0;
  for (let fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + count; fd++) {
    const h = _createServerHandle('', 0, 0, fd);
    const name: { address?: string; port?: number } = {};
    if (typeof h === 'number' || !h.getsockname || h.getsockname(name) !== 0 || typeof name.port !== 'number') {
      if (typeof h !== 'number') h.close();
      log.warn(`socket activation: fd ${fd} is not a listening TCP socket; left alone`);
      continue;
    }
    const host = name.address === '::' || name.address === '0.0.0.0' ? '' : name.address ?? '';
    into.set(listenKey({ host, port: name.port, ipv6Only: false }), h);
    log.info(`socket activation: listening on ${name.address}:${name.port} (fd ${fd}) from the service manager`);
    taken++;
  }
  return taken;
}

/**
 * The held socket for `address`: its own key, or for an any-address listen (`''`, `::`,
 * `0.0.0.0`) the any-address socket systemd passed for that port, which is then filed under
 * the listen's key. Undefined when none is held.
 */
export function heldFor(held: Map<string, RawHandle>, address: ListenAddress): RawHandle | undefined {
  const key = listenKey(address);
  const own = held.get(key);
  if (own !== undefined || !['', '::', '0.0.0.0'].includes(address.host) || address.host === '') return own;
  const anyKey = listenKey({ host: '', port: address.port, ipv6Only: false });
  const any = held.get(anyKey);
  if (any === undefined) return undefined;
  held.delete(anyKey);
  held.set(key, any);
  return any;
}
