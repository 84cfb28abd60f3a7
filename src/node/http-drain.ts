/**
 * Drains an app's HTTP server cleanly (SPEC §5): what keeps reloads and upgrades free of failed
 * requests under keep-alive load. Offered to apps as `ctx.drain(server)`:
 *
 *   running        nothing changes
 *   draining ...   every response says `Connection: close`; a keep-alive connection left idle
 *                  longer than `idleGraceMs` is closed (a connection that has just been answered
 *                  is not: its client may be sending its next request right now)
 *   close()        stop accepting (other workers, or the new master's, keep the socket), let
 *                  every connection finish its request and go, then close what is still idle;
 *                  after `timeoutMs` whatever is left is destroyed
 *
 * Node's own `server.close()` closes idle connections at once, which races with clients that
 * are about to reuse them: the classic cause of failed requests during a reload.
 */
import net from 'node:net';
import type http from 'node:http';
import type { LifecycleView } from './lifecycle.js';

export interface DrainOptions {
  /** How long a connection must have been idle before a draining node closes it (default 1 s). */
  idleGraceMs?: number;
  /** The longest close() waits for connections before destroying them (default 30 s). */
  timeoutMs?: number;
}

export interface HttpDrain {
  /** Stops accepting and resolves once every connection is gone. */
  close(): Promise<void>;
}

interface ConnState {
  busy: number;
  idleSince: number;
}

export function drainHttpServer(server: http.Server, lifecycle: LifecycleView, opts: DrainOptions = {}): HttpDrain {
  const idleGraceMs = opts.idleGraceMs ?? 1_000;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const conns = new Map<net.Socket, ConnState>();
  const draining = () => lifecycle.stage !== 'running';

  server.on('connection', (socket: net.Socket) => {
    conns.set(socket, { busy: 0, idleSince: Date.now() });
    socket.once('close', () => conns.delete(socket));
  });
  // Before the app's own listener, so the header is set before the app writes its head.
  server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const state = conns.get(req.socket);
    if (state) state.busy += 1;
    if (draining()) res.setHeader('Connection', 'close');
    res.once('close', () => {
      if (!state) return;
      state.busy -= 1;
      state.idleSince = Date.now();
    });
  });
  const closeIdle = (): void => {
    const now = Date.now();
    for (const [socket, state] of conns) {
      if (state.busy === 0 && now - state.idleSince >= idleGraceMs) socket.destroy();
    }
  };
  let sweeper: NodeJS.Timeout | undefined;
  const unsubscribe = lifecycle.onStage((stage) => {
    if (stage === 'running' || sweeper) return;
    sweeper = setInterval(closeIdle, Math.max(50, Math.floor(idleGraceMs / 4)));
    sweeper.unref();
  });

  return {
    close() {
      return new Promise<void>((resolve) => {
        unsubscribe();
        // net's close, not http's: stop accepting without closing the idle connections at once.
        net.Server.prototype.close.call(server, () => {
          clearInterval(sweeper);
          clearTimeout(deadline);
          resolve();
        });
        sweeper ??= setInterval(closeIdle, Math.max(50, Math.floor(idleGraceMs / 4)));
        const deadline = setTimeout(() => {
          for (const socket of conns.keys()) socket.destroy();
        }, timeoutMs);
        deadline.unref();
        if (conns.size === 0) closeIdle();
      });
    },
  };
}
