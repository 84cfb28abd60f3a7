// Child processes for end-to-end tests: spawn, collect output, wait for a line or the exit, and
// never leave a process behind. Each child gets its own process group, so cleanup can kill
// whatever it started too. Output is kept, and printed only when the test failed.
//
//   useChildProcesses();                        // once per test file: cleanup after each test
//   const node = spawnChild(process.execPath, [boot, 'foreground'], { env });
//   await node.waitForOutput(/ready/);
//   node.signal('SIGTERM');
//   expect((await node.waitForExit()).code).toBe(0);
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { afterEach } from 'vitest';

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnChildOptions extends Omit<SpawnOptions, 'stdio' | 'detached'> {
  /** Name used when the output is printed (default: the command line). */
  readonly label?: string;
}

export interface WaitForOutputOptions {
  readonly timeoutMs?: number;
  /** Only match output from this offset on (e.g. `child.output.length` before an action). */
  readonly from?: number;
  readonly stream?: 'all' | 'stdout' | 'stderr';
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** After 'exit', how long to wait for the pipes to drain ('close'); a grandchild may hold them. */
const CLOSE_GRACE_MS = 2_000;

const live = new Set<Child>();
let spawnedSinceCleanup: Child[] = [];

export class Child {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly label: string;
  #all = '';
  #stdout = '';
  #stderr = '';
  #exit: ExitStatus | undefined;
  #isClosed = false;
  readonly #exited: Promise<ExitStatus>;
  readonly #closed: Promise<void>;
  readonly #changed = new Set<() => void>();

  constructor(proc: ChildProcess, label: string) {
    if (proc.pid === undefined) throw new Error(`could not spawn ${label}`);
    this.process = proc;
    this.pid = proc.pid;
    this.label = label;
    proc.stdout?.setEncoding('utf8').on('data', (s: string) => this.#append('stdout', s));
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => this.#append('stderr', s));
    this.#exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        live.delete(this);
        resolve(this.#exit);
      }),
    );
    this.#closed = new Promise((resolve) =>
      proc.once('close', () => {
        this.#isClosed = true;
        this.#notify();
        resolve();
      }),
    );
  }

  /** stdout and stderr interleaved in arrival order. */
  get output(): string {
    return this.#all;
  }
  get stdout(): string {
    return this.#stdout;
  }
  get stderr(): string {
    return this.#stderr;
  }
  /** Set once the process has exited. */
  get exitStatus(): ExitStatus | undefined {
    return this.#exit;
  }

  /**
   * Resolves with the first match of `pattern` in the output (its `index` counts from the start
   * of that stream's output); rejects on timeout or when the child ends without a match.
   */
  waitForOutput(pattern: RegExp, opts: WaitForOutputOptions = {}): Promise<RegExpExecArray> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, from = 0, stream = 'all' } = opts;
    const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    const text = (): string => (stream === 'stdout' ? this.#stdout : stream === 'stderr' ? this.#stderr : this.#all);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(text().slice(from));
        if (m) {
          m.index += from;
          settle();
          resolve(m);
        } else if (this.#isClosed) {
          settle();
          reject(new Error(`${this.label} (pid ${this.pid}) ended (${describeExit(this.#exit)}) without printing ${pattern}`));
        }
      };
      const timer = setTimeout(() => {
        settle();
        reject(new Error(`${this.label} (pid ${this.pid}): no ${pattern} in output within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (): void => {
        clearTimeout(timer);
        this.#changed.delete(check);
      };
      this.#changed.add(check);
      check();
    });
  }

  /** Resolves once the process has exited (and its output has been read); rejects on timeout. */
  async waitForExit(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label} (pid ${this.pid}) still running after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const status = await Promise.race([this.#exited, timeout]);
      await Promise.race([this.#closed, new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())]);
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` to the child itself (not its group); ignored once it has exited. */
  signal(signal: NodeJS.Signals): void {
    if (this.#exit) return;
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /** SIGKILL to the child's process group, then waits for it to exit. */
  async kill(): Promise<void> {
    for (const target of [-this.pid, this.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone, or not a group leader
      }
    }
    if (!this.#exit) await this.waitForExit(10_000);
  }

  #append(stream: 'stdout' | 'stderr', s: string): void {
    this.#all += s;
    if (stream === 'stdout') this.#stdout += s;
    else this.#stderr += s;
    this.#notify();
  }

  #notify(): void {
    for (const fn of [...this.#changed]) fn();
  }
}

export function spawnChild(command: string, args: readonly string[], options: SpawnChildOptions = {}): Child {
  const { label = [command, ...args].join(' '), ...spawnOptions } = options;
  const proc = spawn(command, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const child = new Child(proc, label);
  live.add(child);
  spawnedSinceCleanup.push(child);
  return child;
}

/** Children that have not exited yet. */
export function liveChildren(): Child[] {
  return [...live];
}

/** Kills every live child; with `printOutput`, prints the output of every child spawned since the last cleanup. */
export async function cleanupChildren(opts: { printOutput: boolean }): Promise<void> {
  const spawned = spawnedSinceCleanup;
  spawnedSinceCleanup = [];
  await Promise.all([...live].map((c) => c.kill()));
  // What an exited child left running in its process group (a daemon, a worker) goes too.
  for (const c of spawned) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // no such group: nothing left
    }
  }
  if (!opts.printOutput) return;
  for (const c of spawned) {
    console.error(`--- ${c.label} (pid ${c.pid}, ${describeExit(c.exitStatus)}) ---\n${c.output}--- end of ${c.label} ---`);
  }
}

/** Registers an afterEach in the calling test file: kill leftovers, print output if the test failed. */
export function useChildProcesses(): void {
  afterEach(async (ctx) => {
    await cleanupChildren({ printOutput: ctx.task.result?.state === 'fail' });
  });
}

export function describeExit(status: ExitStatus | undefined): string {
  if (!status) return 'running';
  return status.signal ? `killed by ${status.signal}` : `exit code ${status.code}`;
}
