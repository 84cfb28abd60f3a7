/**
 * One node per node name: the node takes this lock on its run directory
 * (`RELEASE_TMP/<node>`) before it writes its pid file or opens its control socket, so ten
 * `start`s racing each other end with one node and nine "already running" answers.
 *
 * Linux: the lock is an abstract-namespace Unix socket named after the run directory's real
 * path. Binding it is atomic (EADDRINUSE for everyone but the first), and it lives only as long
 * as the process holding it: the kernel frees the name when the process dies, however it dies,
 * so a crashed node never leaves a stale lock. The holder answers every connection with
 * `<pid>\n`, which is how a loser learns who holds it. The server is unref'ed (it never keeps
 * the node alive) and its descriptor is close-on-exec (children never inherit the lock).
 * Abstract names are per network namespace: nodes in different network namespaces (containers)
 * sharing one run directory do not see each other's lock. And abstract names have no
 * permissions: another local user could bind the name first and so keep the node from starting
 * (it would be reported as the holder).
 *
 * Elsewhere (and on request): an O_EXCL lock file `<runDir>/node.lock` holding the pid. A lock
 * whose pid is dead (or is this very process without holding it: a container's node restarted
 * with the same pid) is stale, and its takers go one at a time (`takeOver`). What remains: a pid
 * reused by an unrelated live process makes a stale lock look held; and if a taker dies in the
 * middle of a takeover, the next two to replace its takeover file can race as the old
 * rename-then-verify did (both win if one stalls past TAKEOVER_SETTLE_MS).
 */
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { randomBytes, sha256 } from '../control/digest.js';
import { isAlive, parsePid } from './pid-file.js';

export interface NodeLock {
  /** Gives the lock up at once (idempotent). A process that exits releases it anyway. */
  release(): void;
}

export type LockResult = { acquired: true; lock: NodeLock } | { acquired: false; heldBy?: number };

export type LockMethod = 'abstract-socket' | 'lock-file';

export interface AcquireNodeLockOptions {
  /**
   * While the lock is held by another process, keep trying this long (ms) before answering
   * `acquired: false` (default 0: answer at once). For a new master that must wait for the old
   * one to quit (USR2 re-exec).
   */
  readonly waitMs?: number;
  /** Default: `abstract-socket` on Linux, `lock-file` elsewhere. */
  readonly method?: LockMethod;
}

/** The lock file of the `lock-file` method. */
export const LOCK_FILE = 'node.lock';

const PREFIX = '\0noderel-lock:';
/** `sun_path` is 108 bytes; an abstract name uses all of them but needs no terminating NUL. */
const MAX_ABSTRACT_NAME = 107;
/** How long a loser waits for the holder to say its pid. */
const ASK_TIMEOUT_MS = 2_000;
/** Tries when the name is in use but nobody answers (the holder is between bind and listen, or just released it). */
const SOCKET_TRIES = 20;
/** A lock file without a pid in it is a winner between its create and its write, unless it is older than this. */
const EMPTY_LOCK_GRACE_MS = 2_000;
const TAKEOVER_SETTLE_MS = 50;
/** How long a taker waits for another live taker of the same stale lock to finish. */
const TAKEOVER_WAIT_MS = 10_000;
const RETRY_MS = 10;
const WAIT_POLL_MS = 50;
/** Connect errors that mean nobody holds the name any more (or is about to stop holding it). */
const GONE = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE']);

/** Lock files held by this process (see `tryLockFile`: our own pid in a lock file is stale unless listed here). */
const heldLockFiles = new Set<string>();

/** The abstract socket name for `runDir` (which must exist): `\0noderel-lock:<sha256 of its real path>`. */
export function lockName(runDir: string): string {
  const real = realpathSync(runDir);
  const hash = sha256(real).toString('hex');
  return (PREFIX + hash).slice(0, MAX_ABSTRACT_NAME);
}

/**
 * Takes the node lock for `runDir` (created, 0750, if missing). Resolves `acquired: false`
 * with the holder's pid when another process holds it (`heldBy` is missing when the holder
 * cannot be asked: it does not answer within 2 s, or keeps vanishing and reappearing).
 */
export async function acquireNodeLock(runDir: string, opts: AcquireNodeLockOptions = {}): Promise<LockResult> {
  mkdirSync(runDir, { recursive: true, mode: 0o750 });
  const method = opts.method ?? (process.platform === 'linux' ? 'abstract-socket' : 'lock-file');
  const deadline = Date.now() + Math.max(0, opts.waitMs ?? 0);
  for (;;) {
    const result = method === 'abstract-socket' ? await tryAbstractSocket(runDir) : await tryLockFile(join(realpathSync(runDir), LOCK_FILE));
    const left = deadline - Date.now();
    if (result.acquired || left <= 0) return result;
    await sleep(Math.min(WAIT_POLL_MS, left));
  }
}

// --- abstract socket (Linux) -----------------------------------------------------------------

async function tryAbstractSocket(runDir: string): Promise<LockResult> {
  const name = lockName(runDir);
  for (let i = 0; i < SOCKET_TRIES; i++) {
    const server = createServer((socket) => {
      socket.on('error', () => {}); // a loser that hung up early
      socket.end(`${process.pid}\n`);
    });
    const err = await listen(server, name);
    if (!err) {
      if (server.address() !== name) {
        // A runtime without abstract socket support bound something else: use the lock file.
        server.close();
        return tryLockFile(join(realpathSync(runDir), LOCK_FILE));
      }
      server.unref();
      server.on('error', () => {}); // accept errors (EMFILE) must not crash the node
      let released = false;
      return {
        acquired: true,
        lock: {
          release() {
            if (released) return;
            released = true;
            server.close(); // closes the descriptor now: the name is free when this returns
          },
        },
      };
    }
    if (err.code !== 'EADDRINUSE') throw err;
    const answer = await askHolder(name);
    if (answer !== 'gone') return { acquired: false, heldBy: answer };
    await sleep(RETRY_MS); // released in between, or bound and not yet listening: try again
  }
  return { acquired: false };
}

function listen(server: Server, name: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const onError = (err: NodeJS.ErrnoException): void => resolve(err);
    server.once('error', onError);
    // exclusive: in a cluster worker, bind here rather than share the primary's handle
    server.listen({ path: name, exclusive: true }, () => {
      server.removeListener('error', onError);
      resolve(undefined);
    });
  });
}

/** The holder's pid; `'gone'` when nobody listens on the name (any more); undefined when it does not say. */
function askHolder(name: string): Promise<number | 'gone' | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    let data = '';
    const socket = connect({ path: name });
    const settle = (value: number | 'gone' | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => settle(undefined), ASK_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (data.length > 32) settle(undefined);
    });
    // Hung up without a word: the holder is closing its server (release, exit). Ask again.
    const answer = (): number | 'gone' | undefined => (data === '' ? 'gone' : parsePid(data));
    socket.on('end', () => settle(answer()));
    socket.on('close', () => settle(answer()));
    socket.on('error', (err: NodeJS.ErrnoException) => settle(GONE.has(err.code ?? '') ? 'gone' : undefined));
  });
}

// --- lock file (other platforms) -------------------------------------------------------------

async function tryLockFile(file: string): Promise<LockResult> {
  for (let i = 0; i < SOCKET_TRIES; i++) {
    if (createExclusive(file)) return { acquired: true, lock: fileLock(file) };
    const seen = readText(file);
    if (seen === undefined) continue; // released in between: create it again
    const holder = parsePid(seen);
    if (holder === undefined) {
      if (ageMs(file) < EMPTY_LOCK_GRACE_MS) {
        await sleep(RETRY_MS); // a winner between its create and its write
        continue;
      }
    } else if (holder === process.pid ? heldLockFiles.has(file) : isAlive(holder)) {
      return { acquired: false, heldBy: holder };
    }
    if (await takeOver(file, seen)) return { acquired: true, lock: fileLock(file) };
  }
  return { acquired: false };
}

function createExclusive(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Replaces the stale lock (content `stale`) by ours. Takers of one stale lock go one at a time,
 * each holding `<lock>.takeover` (an O_EXCL file with its pid, like the lock itself): the holder
 * checks the lock still holds `stale`, removes it and creates its own with O_EXCL, so a taker
 * that stalls anywhere holds the others off instead of racing them, and a lock it did not see
 * stale is never removed. Only the takeover file of a taker that died mid-way is replaced the
 * racy way (rename, settle, read back: `renameOver`).
 */
async function takeOver(file: string, stale: string): Promise<boolean> {
  const mutex = `${file}.takeover`;
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  while (!(await acquireTakeover(mutex))) {
    if (Date.now() > deadline) return false;
    await sleep(RETRY_MS);
  }
  try {
    if (readText(file) !== stale) return false; // someone took it over, or it was released: look again
    rmSync(file, { force: true });
    return createExclusive(file);
  } finally {
    if (parsePid(readText(mutex) ?? '') === process.pid) rmSync(mutex, { force: true });
  }
}

/** Takes the takeover file: false while a live taker holds it (or one is between create and write). */
async function acquireTakeover(mutex: string): Promise<boolean> {
  if (createExclusive(mutex)) return true;
  const seen = readText(mutex);
  if (seen === undefined) return false;
  const holder = parsePid(seen);
  if (holder === undefined ? ageMs(mutex) < EMPTY_LOCK_GRACE_MS : holder !== process.pid && isAlive(holder)) return false;
  return renameOver(mutex, seen);
}

/**
 * Replaces `file` (content `stale`) by a file with our pid: a temp file renamed over it if it
 * still holds `stale`, then, after a pause long enough for a concurrent taker's rename to land,
 * read back. Whoever's pid is in the file then has it.
 */
async function renameOver(file: string, stale: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644, flag: 'wx' });
  try {
    if (readText(file) !== stale) return false;
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
  await sleep(TAKEOVER_SETTLE_MS);
  return parsePid(readText(file) ?? '') === process.pid;
}

function fileLock(file: string): NodeLock {
  heldLockFiles.add(file);
  const release = (): void => {
    if (!heldLockFiles.delete(file)) return;
    process.removeListener('exit', release);
    if (parsePid(readText(file) ?? '') === process.pid) rmSync(file, { force: true });
  };
  process.once('exit', release); // a process that exits normally leaves no lock file behind
  return { release };
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
