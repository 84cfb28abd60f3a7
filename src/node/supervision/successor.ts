/**
 * USR2's new process (unicorn, nginx), for a master and for a single-process node alike:
 * `bin/<name> reexec` (so it may be another release version) with an IPC channel, given the
 * listening sockets first (`listener` messages, then `handover-done`: listeners.ts adopts them);
 * the pid file moves to `<pid file>.oldbin` meanwhile. A new process that fails before it is
 * ready gives the pid file back and the old one keeps serving; one that exits later (a rollback:
 * QUIT to the new one) gives it back too. Once the old one has let go of the control socket
 * path, `completeHandover` tells the new one to take it ('ctl-free') and lets it go its own way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, renameSync } from 'node:fs';
import type { Server } from 'node:net';
import { basename } from 'node:path';
import { withHeldCookie } from '../control/cookie.js';
import { successorEnv } from '../release/launch-env.js';
import type { Logger } from '../logs/log.js';

export interface SuccessorOptions {
  /** 'master' or 'node', for the messages. */
  readonly what: string;
  /** What the old one waits for before it leaves, for the log: 'WINCH and QUIT', 'TERM or QUIT'. */
  readonly retireWith: string;
  readonly pidFile: string;
  /** `bin/<name>` of the release, REL and the node name for the new process. */
  readonly launcher: string;
  readonly nodeType: string;
  readonly nodeName: string;
  readonly log: Logger;
  /** The listening sockets to hand over, by address. */
  handles(): Iterable<[string, unknown]>;
  /** This process is stopping: a successor's exit is no rollback then. */
  stopping?(): boolean;
  /** A ready successor exited while this process runs (a rollback). */
  onGone?(): void;
}

export interface SuccessorControl {
  /**
   * Starts the new process on our sockets (through `launcher`, default the release's current
   * `bin/<name>`); resolves with its pid once it is ready.
   */
  reexec(launcher?: string): Promise<number>;
  completeHandover(): void;
  /** The new process, while there is one. */
  current(): ChildProcess | undefined;
}

export function successorControl(o: SuccessorOptions): SuccessorControl {
  let successor: ChildProcess | undefined;
  const oldbin = `${o.pidFile}.oldbin`;
  const pidFileBack = (): void => {
    if (existsSync(oldbin)) renameSync(oldbin, o.pidFile);
  };
  return {
    current: () => successor,
    reexec(launcher = o.launcher) {
      if (successor) return Promise.reject(new Error(`a new ${o.what} (pid ${successor.pid}) is already starting or running; QUIT one of the two first`));
      renameSync(o.pidFile, oldbin);
      const child = spawn(launcher, ['reexec'], {
        // the cookie from the environment, which the apps' process.env no longer holds
        env: withHeldCookie(successorEnv(o.nodeType, o.nodeName)),
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        detached: true,
      });
      successor = child;
      o.log.info(`USR2: starting a new ${o.what} (pid ${child.pid}) from ${launcher}; ${o.pidFile} is now ${basename(oldbin)}`);
      for (const [key, h] of o.handles()) child.send({ t: 'listener', key }, h as Server);
      child.send({ t: 'handover-done' });
      return new Promise<number>((resolve, reject) => {
        child.once('exit', (code, signal) => {
          successor = undefined;
          // The pid file comes back to us (over the new one's, if it got as far as writing one).
          pidFileBack();
          const why = signal ? `killed by ${signal}` : `exit code ${code}`;
          o.log.error(`USR2: the new ${o.what} failed (${why}); this ${o.what} keeps serving`);
          reject(new Error(`the new ${o.what} failed to start (${why}); the old ${o.what} (pid ${process.pid}) keeps serving`));
        });
        child.on('message', (msg: { t?: string }) => {
          if (msg.t !== 'ready') return;
          o.log.info(`USR2: the new ${o.what} (pid ${child.pid}) is ready; both serve until this one gets ${o.retireWith}`);
          child.removeAllListeners('exit');
          child.on('exit', () => {
            successor = undefined;
            if (o.stopping?.()) return;
            // Rolled back (QUIT to the new one): the pid file is ours again, as in unicorn.
            pidFileBack();
            o.log.info(`the new ${o.what} (pid ${child.pid}) exited; ${basename(o.pidFile)} is this ${o.what}'s again`);
            o.onGone?.();
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
