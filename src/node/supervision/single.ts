/**
 * USR2 for a node type without workers, as unicorn does it for a master: the node holds
 * its apps' listening sockets (bound by noderel: listeners.ts), starts `bin/<name> reexec` (so the
 * new process may be another release version) and hands it those sockets over IPC (successor.ts,
 * shared with masters); both serve
 * until the old one gets QUIT; a new node that fails to become ready exits and the old one keeps
 * its pid file; the new one exiting later gives it back (a rollback).
 */
import type { Server } from 'node:net';
import { adoptActivatedSockets, adoptHandles, bindListener, heldFor, listenKey, routeListens, type RawHandle } from './listeners.js';
import type { Logger } from '../logs/log.js';
import type { SuccessorControl } from './successor.js';

export interface SingleProcessHandover {
  /** Starts the new node on our sockets (through `launcher`, default bin/<name>); resolves with its pid once it is ready. */
  reexec(launcher?: string): Promise<number>;
  /** After this node let go of the control socket path: the new node may take it. */
  completeHandover(): void;
}

export interface SingleProcessOptions {
  /** This node was started by a USR2 of an old one: its sockets arrive over IPC first. */
  readonly successorOfOld: boolean;
  /** Listening sockets systemd passed from fd 3 (socket activation); 0: none. */
  readonly listenFds?: number;
  readonly pidFile: string;
  /** `bin/<name>` of the release, REL and the node name for the new node. */
  readonly launcher: string;
  readonly nodeType: string;
  readonly nodeName: string;
  readonly log: Logger;
  /** The new node exited after it was ready (a rollback): the control socket is ours again. */
  onSuccessorGone(): void;
}

export function holdListeningSockets(o: SingleProcessOptions): SingleProcessHandover {
  const inherited = new Map<string, RawHandle>();
  const adopted = o.successorOfOld && process.send ? adoptHandles(inherited, o.log, 'the old node') : Promise.resolve();
  if (!o.successorOfOld && (o.listenFds ?? 0) > 0) adoptActivatedSockets(inherited, o.listenFds!, o.log);
  delete process.env.NODEREL_LISTEN_FDS;
  const serving = new Map<Server, string>();
  routeListens(
    async (address) => {
      await adopted;
      const key = listenKey(address);
      const h = heldFor(inherited, address);
      if (h) {
        inherited.delete(key);
        return h;
      }
      return bindListener(address);
    },
    {
      onListening: (server, key) => {
        serving.set(server, key);
        server.once('close', () => serving.delete(server));
      },
    },
  );

  // child_process and the rest are loaded only when a USR2 comes
  let succession: SuccessorControl | undefined;
  return {
    async reexec(launcher?: string) {
      succession ??= (await import('./successor.js')).successorControl({
        what: 'node',
        retireWith: 'TERM or QUIT',
        pidFile: o.pidFile,
        launcher: o.launcher,
        nodeType: o.nodeType,
        nodeName: o.nodeName,
        log: o.log,
        handles: () => [...serving].flatMap(([server, key]) => {
          const handle = (server as Server & { _handle?: unknown })._handle;
          return handle ? [[key, handle] as [string, unknown]] : [];
        }),
        onGone: () => o.onSuccessorGone(),
      });
      return succession.reexec(launcher);
    },
    completeHandover() {
      succession?.completeHandover();
    },
  };
}
