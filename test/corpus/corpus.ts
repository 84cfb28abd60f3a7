/**
 * The corpus tier's machinery (issue 9): real packages from the npm registry installed into temp
 * projects, made into releases by `noderel init` and `noderel tar`, and deployed as an operator
 * would: the tarball unpacked into a fresh directory with no node_modules in any ancestor, then
 * driven through `bin/<name>` (run from the release root) with real traffic.
 *
 * - `registry()`: is the npm registry reachable (`npm view express version`, once per run)?
 * - `prepare(spec)`: write the project, `npm install` (one npm cache under os.tmpdir() shared by
 *   every install of the run, --prefer-offline), `noderel init`, `noderel tar`, unpack.
 * - `Deployed`: the unpacked release with its own RELEASE_TMP, RUNNER_LOG_DIR and port; its
 *   commands run asynchronously (traffic keeps flowing meanwhile); `cleanup()` kills by pid
 *   every node it saw or finds in its pid files.
 * - `httpLoad()` (in-process requests until stopped, every answer checked) and `underWrk()` (wrk
 *   on 127.0.0.1, bounded, stopped with SIGINT once the action is done; 0 errors expected).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { cliPath, tempDir, testCacheDir, writeFiles } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { spawnChild } from '../helpers/proc.js';
import { alive, waitFor } from '../helpers/sandbox.js';

export { alive, waitFor };

/** One npm cache for every install of the run (and of later runs on the machine). */
export const npmCache = process.env.NODEREL_CORPUS_NPM_CACHE ?? path.join(os.tmpdir(), 'noderel-corpus-npm-cache');

/** npm settings of the environment that say how to reach the registry: kept. */
const NPM_NETWORK = /^npm_config_(registry|@[^:]+:registry|proxy|https_proxy|noproxy|cafile|ca|strict_ssl|userconfig|globalconfig|fetch_[a-z_]+)$/i;

/**
 * The environment for npm and noderel: without the npm_* variables an `npm test`/`npx` parent
 * sets (npm_config_local_prefix would make every temp project's install land in this
 * repository), but with the registry and proxy settings.
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if ((!/^npm_/i.test(k) || NPM_NETWORK.test(k)) && k !== 'INIT_CWD') env[k] = v;
  return { ...env, ...extra };
}

let registryAnswer: { reachable: boolean; why: string } | undefined;
/** Asks the registry once per process (`npm view express version`, 30 s at most). */
export function registry(): { reachable: boolean; why: string } {
  if (registryAnswer) return registryAnswer;
  const r = spawnSync('npm', ['view', 'express', 'version', '--cache', npmCache, '--fetch-retries=1'], { encoding: 'utf8', timeout: 30_000, env: cleanEnv() });
  const version = (r.stdout ?? '').trim();
  if (r.status === 0 && /^\d+\.\d+\.\d+/.test(version)) registryAnswer = { reachable: true, why: `express ${version}` };
  else {
    const lines = (r.stderr ?? '').split('\n').map((l) => l.replace(/^npm error\s*/, '').trim());
    const why = r.error ? r.error.message : lines.filter((l) => /^code |FetchError|reason|E[A-Z0-9]{3,}/.test(l)).slice(0, 2).join('; ') || lines.filter(Boolean).slice(0, 2).join('; ') || `exit ${r.status}`;
    registryAnswer = { reachable: false, why };
  }
  return registryAnswer;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command asynchronously (the event loop keeps serving in-process load meanwhile). */
export function run(command: string, args: readonly string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; outFile?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // Long builds write to a file: nothing depends on this process reading a pipe in time.
    const out = o.outFile ? fs.openSync(o.outFile, 'a') : undefined;
    const child = spawn(command, args, { cwd: o.cwd, env: o.env ?? cleanEnv(), stdio: ['ignore', out ?? 'pipe', out ?? 'pipe'], detached: true });
    if (out !== undefined) fs.closeSync(out);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timeoutMs = o.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      reject(new Error(`${[command, ...args].join(' ')}: still running after ${timeoutMs} ms (killed)\n${stdout}${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      if (o.outFile) stdout = fs.readFileSync(o.outFile, 'utf8');
      resolve({ status, stdout, stderr });
    });
  });
}

/** `noderel ARGS` in `cwd`, with the tests' shared runtime cache. */
export function noderel(cwd: string, args: readonly string[], o: { timeoutMs?: number; outFile?: string } = {}): Promise<Run> {
  return run(process.execPath, [cliPath, ...args], { cwd, env: cleanEnv({ NODEREL_CACHE_DIR: testCacheDir }), timeoutMs: o.timeoutMs ?? 300_000, outFile: o.outFile });
}

/** One `noderel tar` at a time (each gzips a whole Node runtime: CPU for one core). */
let tarQueue: Promise<unknown> = Promise.resolve();
function serially<T>(job: () => Promise<T>): Promise<T> {
  const next = tarQueue.then(job, job);
  tarQueue = next.catch(() => undefined);
  return next;
}

/** Fails unless no ancestor of `dir` (nor `dir`) holds a node_modules. */
export function assertNoNodeModulesAbove(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    const nm = path.join(d, 'node_modules');
    if (fs.existsSync(nm)) throw new Error(`${nm} exists: the unpacked release could resolve modules out of it; the corpus needs a directory with no node_modules in any ancestor`);
    if (path.dirname(d) === d) return;
  }
}

export interface AppSpec {
  /** Short label: temp dir names and messages. */
  label: string;
  /** The project's files, package.json included. */
  files: Record<string, string>;
  /** npm install --ignore-scripts (an addon left for `noderel --rebuild-addons` to build). */
  ignoreScripts?: boolean;
  /** `noderel init` arguments, given the app's port. */
  init(port: number): string[];
  /** Edits of rel/relx.config after init (the parsed YAML). */
  config?(config: Record<string, any>, port: number): void;
  /** Extra `noderel tar` arguments. */
  tar?: string[];
}

export interface Prepared {
  spec: AppSpec;
  project: string;
  name: string;
  version: string;
  port: number;
  tarball: string;
  /** `tar tzf` of the tarball. */
  listing: string[];
  /** The unpacked release. */
  root: string;
  /** Every step's output, for failure messages. */
  log: string[];
}

const removeLater: (() => void)[] = [];
/** Removes every temp directory the corpus made (afterAll of the test file). */
export function removeTempDirs(): void {
  while (removeLater.length) removeLater.pop()!();
}

function step(log: string[], what: string, r: Run): void {
  log.push(`$ ${what} -> ${r.status}\n${r.stdout}${r.stderr}`);
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${(r.stderr || r.stdout).trim().split('\n').slice(-40).join('\n')}`);
}

/**
 * Project, npm install, noderel init, noderel tar, unpack into a fresh directory. `noderel tar`
 * waits for the others' unless `ownLane` (a long build that should not hold them up);
 * `buildLog`: its output goes to that file.
 */
export async function prepare(spec: AppSpec, o: { buildLog?: string; ownLane?: boolean } = {}): Promise<Prepared> {
  const log: string[] = [];
  const proj = tempDir(`noderel-corpus-${spec.label}-src-`);
  removeLater.push(proj.cleanup);
  writeFiles(proj.dir, spec.files);
  const install = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', '--cache', npmCache, ...(spec.ignoreScripts ? ['--ignore-scripts'] : [])];
  step(log, `npm ${install.join(' ')}`, await run('npm', install, { cwd: proj.dir, timeoutMs: 300_000 }));
  const port = await freePort();
  step(log, `noderel init ${spec.init(port).join(' ')}`, await noderel(proj.dir, ['init', ...spec.init(port)]));
  const configFile = path.join(proj.dir, 'rel', 'relx.config');
  const config = YAML.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, any>;
  if (spec.config) {
    spec.config(config, port);
    fs.writeFileSync(configFile, YAML.stringify(config));
  }
  const name = String(config.release.name);
  const version = String(config.release.version);
  const tarArgs = ['tar', ...(spec.tar ?? [])];
  const tar = () => noderel(proj.dir, tarArgs, { outFile: o.buildLog, timeoutMs: 600_000 });
  step(log, `noderel ${tarArgs.join(' ')}`, await (o.ownLane ? tar() : serially(tar)));
  const tarball = path.join(proj.dir, '_rel', `${name}-${version}.tar.gz`);
  if (!fs.existsSync(tarball)) throw new Error(`noderel tar wrote no ${tarball}:\n${log.at(-1)}`);
  const listing = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }).stdout.split('\n').filter(Boolean);
  const where = tempDir(`noderel-corpus-${spec.label}-rel-`);
  removeLater.push(where.cleanup);
  assertNoNodeModulesAbove(where.dir);
  step(log, `tar xzf ${tarball}`, await run('tar', ['xzf', tarball, '-C', where.dir]));
  return { spec, project: proj.dir, name, version, port, tarball, listing, root: where.dir, log };
}

/** An unpacked release, driven through bin/<name> from its root directory. */
export class Deployed {
  readonly root: string;
  readonly name: string;
  readonly bin: string;
  readonly port: number;
  readonly env: NodeJS.ProcessEnv;
  readonly runDir: string;
  readonly logDir: string;
  /** Every node pid seen: killed in cleanup() if still alive. */
  readonly seen = new Set<number>();
  readonly #state: { dir: string; cleanup: () => void };

  /** `portVar`: the variable that gives the app its port (default PORT). */
  constructor(p: Prepared, o: { portVar?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.root = p.root;
    this.name = p.name;
    this.bin = path.join(p.root, 'bin', p.name);
    this.port = p.port;
    this.#state = tempDir(`noderel-corpus-${p.spec.label}-run-`);
    this.runDir = path.join(this.#state.dir, 'tmp');
    this.logDir = path.join(this.#state.dir, 'log');
    this.env = cleanEnv({ REL: p.name, RELEASE_TMP: this.runDir, RUNNER_LOG_DIR: this.logDir, [o.portVar ?? 'PORT']: String(p.port), ...o.env });
    if ((o.portVar ?? 'PORT') !== 'PORT') delete this.env.PORT;
  }

  /** `bin/<name> ARGS`, with the release root as the working directory (the operator's `cd /opt/app`). */
  run(args: readonly string[], o: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
    return run(this.bin, args, { cwd: o.cwd ?? this.root, env: this.env, timeoutMs: o.timeoutMs ?? 150_000 });
  }

  /** The node's pid (`bin/<name> pid`), or undefined when it is not running. */
  async pid(): Promise<number | undefined> {
    const r = await this.run(['pid']);
    if (r.status !== 0) return undefined;
    const pid = Number(r.stdout.trim());
    this.seen.add(pid);
    return pid;
  }

  /** The pid from `status --json` (the node answering on the control socket), or undefined. */
  async statusPid(): Promise<number | undefined> {
    const r = await this.run(['status', '--json']);
    if (r.status !== 0) return undefined;
    try {
      return (JSON.parse(r.stdout) as { pid: number }).pid;
    } catch {
      return undefined;
    }
  }

  #nodeDir(base: string): string {
    const found = fs.existsSync(base) ? fs.readdirSync(base).find((d) => d.startsWith(`${this.name}@`)) : undefined;
    if (!found) throw new Error(`no ${this.name}@* directory in ${base}`);
    return path.join(base, found);
  }
  get pidFile(): string {
    return path.join(this.#nodeDir(this.runDir), 'node.pid');
  }
  get logFile(): string {
    return path.join(this.#nodeDir(this.logDir), 'console.log');
  }
  /** The end of console.log, for failure messages. */
  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch (err) {
      return `(no log: ${(err as Error).message})`;
    }
  }

  get(urlPath = '/'): Promise<{ status: number; body: string }> {
    return httpGet(this.port, urlPath);
  }

  /** Kills (SIGKILL, by pid) every node seen or named by a pid file, then removes run state and logs. */
  cleanup(): void {
    for (const base of [this.runDir]) {
      if (!fs.existsSync(base)) continue;
      for (const node of fs.readdirSync(base)) {
        for (const f of ['node.pid', 'node.pid.oldbin']) {
          const file = path.join(base, node, f);
          if (fs.existsSync(file)) this.seen.add(Number(fs.readFileSync(file, 'utf8')));
        }
      }
    }
    for (const pid of this.seen) {
      if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.#state.cleanup();
  }
}

export function httpGet(port: number, urlPath = '/', timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export interface LoadResult {
  ok: number;
  failed: string[];
}

/**
 * GET `urlPath` in two loops until `stop()`: one on fresh connections, one on keep-alive
 * connections, as clients of a deployed app do. An answer other than 200 (or one `check`
 * rejects) and any connection error is a failure.
 */
export function httpLoad(port: number, urlPath = '/', check: (body: string) => string | undefined = () => undefined) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const one = (keepAlive: boolean) =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: keepAlive ? agent : false, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => {
          const bad = res.statusCode === 200 ? check(body) : `HTTP ${res.statusCode}`;
          if (bad) failed.push(`${keepAlive ? 'keep-alive' : 'fresh'}: ${bad}`);
          else ok++;
          resolve();
        });
        res.on('error', (err) => {
          failed.push(`${keepAlive ? 'keep-alive' : 'fresh'}: ${err.message}`);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
      req.on('error', (err) => {
        failed.push(`${keepAlive ? 'keep-alive' : 'fresh'}: ${err.message}`);
        resolve();
      });
    });
  const loop = async (keepAlive: boolean) => {
    while (running) await one(keepAlive);
  };
  const loops = [loop(false), loop(true)];
  return {
    /** Resolves once `n` requests have succeeded (traffic is flowing). */
    flowing: (n = 5) => waitFor(() => ok >= n || failed.length > 0, 'traffic to flow'),
    get ok() {
      return ok;
    },
    async stop(): Promise<LoadResult> {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ok, failed };
    },
  };
}

export interface WrkSummary {
  requests: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  /** wrk's whole output. */
  output: string;
}

const WRK_SCRIPT = `-- noderel corpus: say when the first answer came, and the summary in one line
local seen = false
response = function(status, headers, body)
  if not seen then seen = true; io.stderr:write("wrk: first response\\n"); io.stderr:flush() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk-summary requests=%d connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
`;

/**
 * Runs `action` while wrk (1 thread, 10 connections, 127.0.0.1 only) loads `urlPath`: wrk starts,
 * its first answer arrives, `action` runs to its end, then wrk is stopped (SIGINT: it prints its
 * summary); wrk's own duration (60 s) only bounds a hung action.
 */
export async function underWrk<T>(port: number, urlPath: string, action: () => Promise<T>): Promise<{ result: T; wrk: WrkSummary }> {
  const dir = tempDir('noderel-corpus-wrk-');
  try {
    const script = path.join(dir.dir, 'summary.lua');
    fs.writeFileSync(script, WRK_SCRIPT);
    const wrk = spawnChild('wrk', ['-t1', '-c10', '-d60s', '--timeout', '5s', '-s', script, `http://127.0.0.1:${port}${urlPath}`], { label: 'wrk' });
    await wrk.waitForOutput(/wrk: first response/, { timeoutMs: 20_000 });
    let result: T;
    try {
      result = await action();
    } finally {
      wrk.signal('SIGINT');
      await wrk.waitForExit(20_000);
    }
    const m = /wrk-summary requests=(\d+) connect=(\d+) read=(\d+) write=(\d+) status=(\d+) timeout=(\d+)/.exec(wrk.output);
    if (!m) throw new Error(`no summary from wrk:\n${wrk.output}`);
    const [requests, connect, read, write, status, timeout] = m.slice(1).map(Number) as [number, number, number, number, number, number];
    return { result, wrk: { requests, connect, read, write, status, timeout, output: wrk.output } };
  } finally {
    dir.cleanup();
  }
}

/** wrk's failures as text ("" when none): socket errors and non-2xx/3xx answers. */
export function wrkFailures(w: WrkSummary): string {
  const parts = (['connect', 'read', 'write', 'timeout', 'status'] as const).filter((k) => w[k] > 0).map((k) => `${k} ${w[k]}`);
  return parts.length ? `${parts.join(', ')} of ${w.requests} requests` : '';
}
