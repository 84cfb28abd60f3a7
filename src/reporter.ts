/**
 * All user-facing output of the toolchain goes through one reporter (no module prints on its own):
 * `* step` lines, warnings, a progress bar on a TTY, quiet mode in one place.
 */
import path from 'node:path';

export interface Reporter {
  step(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  /** Progress of a long transfer; draws a bar on a TTY, prints nothing otherwise. */
  progress(label: string, done: number, total: number): void;
  /** The closing block after a build. */
  block(lines: string[]): void;
}

export interface ReporterOptions {
  quiet?: boolean;
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  err?: NodeJS.WritableStream;
}

export function createReporter(opts: ReporterOptions = {}): Reporter {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const quiet = opts.quiet ?? false;
  const tty = Boolean((out as { isTTY?: boolean }).isTTY);
  let barOpen = false;
  const endBar = () => {
    if (barOpen) {
      out.write('\n');
      barOpen = false;
    }
  };
  return {
    step(message) {
      if (quiet) return;
      endBar();
      out.write(`* ${message}\n`);
    },
    info(message) {
      if (quiet) return;
      endBar();
      out.write(`${message}\n`);
    },
    warn(message) {
      endBar();
      err.write(`warning: ${message}\n`);
    },
    progress(label, done, total) {
      if (quiet || !tty) return;
      const width = 30;
      const mb = (n: number) => (n / 1048576).toFixed(1);
      if (total <= 0) {
        // Size unknown until the end: a moving bar and the bytes so far.
        const pos = Math.floor(done / 1048576) % width;
        out.write(`\r  ${label} [${' '.repeat(pos)}###${' '.repeat(width - pos)}] ${mb(done)} MiB`);
        barOpen = true;
        return;
      }
      const fill = Math.round(Math.min(1, done / total) * width);
      out.write(`\r  ${label} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${mb(done)}/${mb(total)} MiB`);
      barOpen = done < total;
      if (!barOpen) out.write('\n');
    },
    block(lines) {
      if (quiet) return;
      endBar();
      out.write(`\n${lines.join('\n')}\n`);
    },
  };
}

/** A reporter that records lines; for tests and for library callers who print nothing. */
export function createSilentReporter(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    step: (m) => void lines.push(`* ${m}`),
    info: (m) => void lines.push(m),
    warn: (m) => void lines.push(`warning: ${m}`),
    progress: () => {},
    block: (l) => void lines.push(...l),
  };
}

/** Show a stored absolute path relative to the working directory (paths are stored absolute, shown relative). */
export function displayPath(abs: string, cwd: string = process.cwd()): string {
  const rel = path.relative(cwd, abs);
  if (rel === '') return '.';
  return rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel) ? abs : rel;
}
