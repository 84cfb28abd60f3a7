/**
 * A sandbox per test for a built release: its own RELEASE_TMP, RUNNER_LOG_DIR and port, a way
 * to run `bin/<name>` in it, and cleanup that kills (by pid, from the pid files) every node the
 * test left running before removing the directories.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { freePort } from './ports.js';
import { tempDir } from './project.js';

export interface Sandbox {
  env: NodeJS.ProcessEnv;
  port: number;
  tmp: string;
  logs: string;
  run(args: string[], extra?: NodeJS.ProcessEnv): SpawnSyncReturns<string>;
  /** As run, without blocking this process (a test that serves traffic meanwhile). */
  runAsync(args: string[], extra?: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }>;
  /** The node's pid from `bin/<name> pid`, or undefined when it is not running. */
  pid(rel?: string): number | undefined;
  /** The log file of the (only, or named) node. */
  logFile(node?: string): string;
}

const open: { tmp: string; cleanup: () => void }[] = [];

/** A sandbox for `bin` with REL=`rel`; `portVar` names the env variable the app reads its port from. */
export async function sandbox(bin: string, rel: string, portVar: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Sandbox> {
  const t = tempDir('noderel-run-');
  const tmp = path.join(t.dir, 'tmp');
  const logs = path.join(t.dir, 'log');
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, REL: rel, RELEASE_TMP: tmp, RUNNER_LOG_DIR: logs, [portVar]: String(port), ...extraEnv };
  open.push({ tmp, cleanup: t.cleanup });
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => spawnSync(bin, args, { env: { ...env, ...extra }, encoding: 'utf8', timeout: 120_000 });
  const runAsync = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(bin, args, { env: { ...env, ...extra } });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  return {
    env,
    port,
    tmp,
    logs,
    run,
    runAsync,
    pid(relName = rel) {
      const r = run(['pid'], { REL: relName });
      return r.status === 0 ? Number(r.stdout.trim()) : undefined;
    },
    logFile(node) {
      const dir = node ?? fs.readdirSync(logs).find((d) => d.startsWith(`${rel}@`))!;
      return path.join(logs, dir, 'console.log');
    },
  };
}

/** Registers extra directories (an INI file's, say) to remove with the sandboxes. */
export function alsoRemove(dir: { dir: string; cleanup: () => void }): void {
  open.push({ tmp: dir.dir, cleanup: dir.cleanup });
}

/** Kills every node left running in the sandboxes (from their pid files), then removes them. */
export function cleanupSandboxes(): void {
  for (const s of open.splice(0)) {
    if (fs.existsSync(s.tmp) && fs.statSync(s.tmp).isDirectory()) {
      for (const node of fs.readdirSync(s.tmp)) {
        for (const name of ['node.pid', 'node.pid.oldbin']) {
          const file = path.join(s.tmp, node, name);
          if (!fs.existsSync(file)) continue;
          try {
            process.kill(Number(fs.readFileSync(file, 'utf8')), 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    }
    s.cleanup();
  }
}

export function httpGet(port: number, urlPath = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Alive and not a zombie (an exited daemon waits for init to reap it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) [ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
