/**
 * Drains an app's HTTP server cleanly: what keeps reloads and upgrades free of failed
 * requests under keep-alive load. Offered to apps as `ctx.drain(server)`. While the node runs it
 * costs nothing per connection or request: the draining starts with the first stage after
 * `running`, and finds the connections open at that moment in the server's own list.
 *
 *   draining ...   every response says `Connection: close`, so each keep-alive client leaves
 *                  after its next answer; a connection quiet for `idleGraceMs` with no answer
 *                  under way is closed, never at once: a client may be sending its next
 *                  request right now
 *   close()        stop accepting (other workers, or the new master's, keep the socket), let
 *                  every connection finish and go; after `timeoutMs` what is left is destroyed
 *
 * Node's own `server.close()` closes idle connections at once, which races with clients that
 * are about to reuse them: the classic cause of failed requests during a reload.
 */
import { Server as NetServer, type Socket } from 'node:net';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { LifecycleView } from './lifecycle.js';

export interface DrainOptions {
  /** How long an idle keep-alive connection stays open once the node drains (default 1 s). */
  idleGraceMs?: number;
  /** The longest close() waits for connections before destroying them (default 30 s). */
  timeoutMs?: number;
}

export interface HttpDrain {
  /** Stops accepting and resolves once every connection is gone (the same promise every call). */
  close(): Promise<void>;
}

/** A connection with no response under way (Node keeps the current one as `_httpMessage`). */
const isIdle = (socket: Socket): boolean => !(socket as Socket & { _httpMessage?: unknown })._httpMessage;

/**
 * The server's open connections, from the list Node keeps for its own idle and header timeouts
 * (`closeIdleConnections` reads it). Keeping our own set instead (a JS reference to every socket)
 * costs about 30 MiB per worker under `Connection: close` load: the sockets survive young
 * collections and are promoted (bench/README.md). Empty where Node has no such list; the
 * server's keepAliveTimeout then closes those connections.
 */
function openSockets(server: HttpServer): Socket[] {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
  const list = key === undefined ? undefined : (server as unknown as Record<symbol, { all?: () => Array<{ socket?: Socket }> }>)[key];
  if (typeof list?.all !== 'function') return [];
  return list.all().flatMap((c) => (c.socket ? [c.socket] : []));
}

export function drainHttpServer(server: HttpServer, lifecycle: LifecycleView, opts: DrainOptions = {}): HttpDrain {
  const idleGraceMs = opts.idleGraceMs ?? 1_000;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let draining = false;
  const startDraining = (): void => {
    if (draining) return;
    draining = true;
    server.on('connection', (socket: Socket) => socket.setTimeout(idleGraceMs));
    // Before the app's own listener, so the header is set before the app writes its head.
    server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
      if (!res.headersSent) res.setHeader('Connection', 'close');
    });
    server.keepAliveTimeout = Math.min(server.keepAliveTimeout || idleGraceMs, idleGraceMs);
    // A connection quiet for idleGraceMs closes if it is idle; one busy with a slow answer stays
    // (handling 'timeout' here keeps Node from destroying it).
    server.on('timeout', (socket: Socket) => {
      if (isIdle(socket)) socket.destroy();
    });
    for (const socket of openSockets(server)) {
      socket.setTimeout(idleGraceMs);
      // an answer under way whose head is not out yet closes the connection too
      const res = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
      if (res && !res.headersSent) res.setHeader('Connection', 'close');
    }
  };
  const unsubscribe = lifecycle.onStage((stage) => {
    if (stage !== 'running') startDraining();
  });
  if (lifecycle.stage !== 'running') startDraining();

  let closing: Promise<void> | undefined;
  return {
    close() {
      startDraining();
      unsubscribe();
      // once: the node starts it before the stage moves on, the app's stop waits on it again
      return (closing ??= new Promise<void>((resolve) => {
        const deadline = setTimeout(() => server.closeAllConnections(), timeoutMs);
        deadline.unref();
        // net's close, not http's: stop accepting without closing the idle connections at once.
        NetServer.prototype.close.call(server, () => {
          clearTimeout(deadline);
          resolve();
        });
      }));
    },
  };
}
