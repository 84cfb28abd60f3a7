/**
 * One memory-reducing garbage collection of what the noderel runtime allocated while it booted:
 * the runtime compiled, the manifest and config read, a master's workers forked and their
 * sockets bound. That is enough for V8 to run a young collection and double its young
 * generation, and a process that then waits for work keeps the memory until its first full
 * collection, which an idle master never runs. (Unicorn's and Puma's masters run a GC before
 * they fork their workers, for their own reason: pages shared copy-on-write.)
 *
 * - a master runs it once its workers are ready, and after each replacement of its workers: it
 *   runs no app and serves no request, so the pause (10-15 ms) is nobody's;
 * - a worker runs it before its apps start: their own garbage is theirs, as under bare node,
 *   and the pause (about 10 ms) delays its readiness, never a request;
 * - a single-process node does not: `start` waits on its boot.
 * Measured by bench/workers.sh (2 workers, Node 22): the master 0.7 MiB and each worker
 * 0.4-0.5 MiB less RSS, idle (bench/README.md). `NODEREL_GC_AFTER_BOOT=0` turns it off; a
 * heap already over 64 MiB (a huge config, say) is left alone: the pause grows with it.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readLaunchSettings } from '../release/launch-env.js';

/** Above this much live heap a full collection pauses the process for too long: skipped. */
export const BOOT_GC_MAX_HEAP_BYTES = 64 * 1024 * 1024;

type GcOptions = { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' };
type Collect = (options?: GcOptions) => void;

/**
 * `gc`'s arguments for a full, memory-reducing collection. V8 12 (Node 22) takes options:
 * 'last-resort' runs the collections V8 runs before it gives up on memory, and shrinks the
 * young generation back (32 MiB -> 1 MiB after a burst of allocation); without options it
 * leaves the garbage in place. V8 11 (Node 20) knows no flavor, and collects fully only when
 * called without options.
 */
const FULL_GC: [GcOptions?] = Number.parseInt(process.versions.v8, 10) >= 12 ? [{ type: 'major', execution: 'sync', flavor: 'last-resort' }] : [];

/** V8's `gc`: the operator's (`--expose-gc`), else fetched from a context made while the flag is set. */
function collector(): Collect {
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return exposed as Collect;
  // V8 gives `gc` to the contexts created while --expose-gc is set; the flag goes back at once
  // (V8's flags are part of the key of its code caches, Node's built-in modules' among them).
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as Collect;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

export interface BootGc {
  /** Why it did not run; absent when it ran. */
  skipped?: string;
  heapBefore: number;
  heapAfter: number;
  rssBefore: number;
  rssAfter: number;
  ms: number;
}

/** Runs the collection now (unless skipped) and says what it did; undefined when turned off. */
export function collectBootGarbage(env: NodeJS.ProcessEnv = process.env, maxHeapBytes = BOOT_GC_MAX_HEAP_BYTES): BootGc | undefined {
  if (!readLaunchSettings(env).gcAfterBoot) return undefined;
  const heapBefore = getHeapStatistics().used_heap_size;
  const rssBefore = process.memoryUsage.rss();
  if (heapBefore > maxHeapBytes) return { heapBefore, heapAfter: heapBefore, rssBefore, rssAfter: rssBefore, ms: 0, skipped: `heap of ${mib(heapBefore)} over ${mib(maxHeapBytes)}` };
  // (hrtime, not performance.now(): the first use of `performance` loads perf_hooks, 0.4 MiB)
  const t0 = process.hrtime.bigint();
  collector()(...FULL_GC);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { heapBefore, heapAfter: getHeapStatistics().used_heap_size, rssBefore, rssAfter: process.memoryUsage.rss(), ms };
}

/** The log line for a BootGc. */
export function describeBootGc(r: BootGc): string {
  if (r.skipped) return `no garbage collection after boot: ${r.skipped}`;
  return `garbage collected after boot in ${r.ms.toFixed(1)} ms: heap ${mib(r.heapBefore)} -> ${mib(r.heapAfter)}, rss ${mib(r.rssBefore)} -> ${mib(r.rssAfter)}`;
}

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;

/** Once the current work is done (ready messages sent, log lines written), collect and log it. */
export function scheduleBootGc(log: { debug(msg: string): void }, env: NodeJS.ProcessEnv = process.env): void {
  if (!readLaunchSettings(env).gcAfterBoot) return;
  setImmediate(() => {
    const r = collectBootGarbage(env);
    if (r) log.debug(describeBootGc(r));
  }).unref();
}
