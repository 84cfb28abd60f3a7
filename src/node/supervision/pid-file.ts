/**
 * The node's pid file (`RELEASE_TMP/<node>/node.pid`, `<pid>\n`): written atomically (temp file
 * in the same directory + rename), so a reader sees the old content or the new, never half a
 * line; removed only by the process it names, so a stopping node never deletes the file of the
 * node that already replaced it (USR2 re-exec, a quick `restart`).
 */
import { closeSync, fchmodSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from '../control/digest.js';

/** Writes `<pid>\n` to `file` atomically, mode 0644. The directory must exist. */
export function writePidFile(file: string, pid: number = process.pid): void {
  if (!isPid(pid)) throw new RangeError(`writePidFile: not a pid: ${String(pid)}`);
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      fchmodSync(fd, 0o644); // whatever the umask says: logrotate and `bin/<name> pid` read it
      writeSync(fd, `${pid}\n`);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * The pid in `file`, or undefined when the file is missing or does not hold exactly one
 * positive integer (surrounding whitespace allowed). Other read errors (EACCES, EISDIR) throw.
 */
export function readPidFile(file: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
  return parsePid(text);
}

/** `<digits>` with optional surrounding whitespace -> the pid; anything else -> undefined. */
export function parsePid(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return undefined;
  const pid = Number(trimmed);
  return isPid(pid) ? pid : undefined;
}

/**
 * Whether a process with this pid exists (`kill(pid, 0)`); EPERM (someone else's process)
 * counts as alive. A zombie (exited, not yet reaped by its parent: a daemon's parent is init,
 * which may take seconds) is not alive: it runs nothing and holds nothing. Anything that is
 * not a positive integer is never alive: `kill(0)` and `kill(-1)` address process groups.
 */
export function isAlive(pid: number): boolean {
  if (!isPid(pid)) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** Linux: the state in /proc/<pid>/stat is Z (zombie) or X (dead). Elsewhere: unknown, false. */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}

/**
 * Removes `file` only while it still holds `pid` (default: this process), so a successor's
 * pid file is never removed. Missing file: nothing to do. The check and the unlink are two
 * steps; a successor that wrote its file in between would lose it. A node that keeps its
 * node lock (node-lock.ts) until after this call has no successor yet, so nothing can race it.
 */
export function removePidFile(file: string, pid: number = process.pid): void {
  if (readPidFile(file) !== pid) return;
  rmSync(file, { force: true });
}

function isPid(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0 && pid <= 0x7fffffff;
}
