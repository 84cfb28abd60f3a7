/**
 * USR2 for a node type without workers (SPEC §5), as unicorn does it for a master: the node holds
 * its apps' listening sockets (bound by noderel: listeners.ts), starts `bin/<name> reexec` (so the
 * new process may be another release version) and hands it those sockets over IPC; both serve
 * until the old one gets QUIT; a new node that fails to become ready exits and the old one keeps
 * its pid file; the new one exiting later gives it back (a rollback).
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { adoptHandles, bindListener, routeListens, type RawHandle } from './listeners.js';
import type { Logger } from './log.js';

export interface SingleProcessHandover {
  /** Starts the new node on our sockets; resolves with its pid once it is ready. */
  reexec(): Promise<number>;
  /** After this node let go of the control socket path: the new node may take it. */
  completeHandover(): void;
}

export interface SingleProcessOptions {
  /** This node was started by a USR2 of an old one: its sockets arrive over IPC first. */
  readonly successorOfOld: boolean;
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
  const serving = new Map<net.Server, string>();
  routeListens(
    async (host, port) => {
      await adopted;
      const key = `${host}:${port}`;
      const h = inherited.get(key);
      if (h) {
        inherited.delete(key);
        return h;
      }
      return bindListener(host, port);
    },
    {
      onListening: (server, key) => {
        serving.set(server, key);
        server.once('close', () => serving.delete(server));
      },
    },
  );

  let successor: ChildProcess | undefined;
  return {
    async reexec() {
      if (successor) throw new Error(`a new node (pid ${successor.pid}) is already starting or running; QUIT one of the two first`);
      const { spawn } = await import('node:child_process'); // only when it is needed
      const oldbin = `${o.pidFile}.oldbin`;
      fs.renameSync(o.pidFile, oldbin);
      const child = spawn(o.launcher, ['reexec'], {
        env: { ...process.env, REL: o.nodeType, NODE_NAME: o.nodeName, NODEREL_REEXEC: '1' },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        detached: true,
      });
      successor = child;
      o.log.info(`USR2: starting a new node (pid ${child.pid}) from ${o.launcher}; ${o.pidFile} is now ${path.basename(oldbin)}`);
      for (const [server, key] of serving) {
        const handle = (server as net.Server & { _handle?: unknown })._handle;
        if (handle) child.send({ t: 'listener', key }, handle as net.Server);
      }
      child.send({ t: 'handover-done' });
      return new Promise<number>((resolve, reject) => {
        child.once('exit', (code, signal) => {
          successor = undefined;
          if (fs.existsSync(oldbin)) fs.renameSync(oldbin, o.pidFile);
          const why = signal ? `killed by ${signal}` : `exit code ${code}`;
          o.log.error(`USR2: the new node failed (${why}); this node keeps serving`);
          reject(new Error(`the new node failed to start (${why}); the old node (pid ${process.pid}) keeps serving`));
        });
        child.on('message', (msg: { t?: string }) => {
          if (msg.t !== 'ready') return;
          o.log.info(`USR2: the new node (pid ${child.pid}) is ready; both serve until this one gets QUIT`);
          child.removeAllListeners('exit');
          child.on('exit', () => {
            successor = undefined;
            if (fs.existsSync(oldbin)) fs.renameSync(oldbin, o.pidFile);
            o.log.info(`the new node (pid ${child.pid}) exited; ${path.basename(o.pidFile)} is this node's again`);
            o.onSuccessorGone();
          });
          resolve(child.pid!);
        });
      });
    },
    completeHandover() {
      const child = successor;
      if (!child?.connected) return;
      child.send({ t: 'ctl-free' });
      child.disconnect();
      child.unref();
    },
  };
}
