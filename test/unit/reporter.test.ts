import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createReporter, createSilentReporter, displayPath, type ReporterOptions } from '../../src/reporter.js';

/** A writable stand-in that records what is written; `isTTY` makes it look like a terminal. */
function fakeStream(isTTY = false) {
  const chunks: string[] = [];
  return {
    chunks,
    isTTY,
    columns: 80,
    text: () => chunks.join(''),
    write(s: string | Uint8Array): boolean {
      chunks.push(String(s));
      return true;
    },
  };
}

function reporter(opts: { tty?: boolean; quiet?: boolean } = {}) {
  const out = fakeStream(opts.tty ?? false);
  const err = fakeStream(false);
  const r = createReporter({ out, err, quiet: opts.quiet } as unknown as ReporterOptions);
  return { r, out, err };
}

const MiB = 1048576;

describe('createReporter: lines', () => {
  it('writes steps as "* message" and info as is, to out', () => {
    const { r, out, err } = reporter();
    r.step('assembling kazoo-4.3.0');
    r.info('plain line');
    expect(out.text()).toBe('* assembling kazoo-4.3.0\nplain line\n');
    expect(err.text()).toBe('');
  });

  it('writes warnings to err with a "warning:" prefix', () => {
    const { r, out, err } = reporter();
    r.warn('-setcookie is discouraged');
    expect(err.text()).toBe('warning: -setcookie is discouraged\n');
    expect(out.text()).toBe('');
  });

  it('writes the closing block after a blank line', () => {
    const { r, out } = reporter();
    r.block(['Release built in _rel/kazoo', 'Start it: _rel/kazoo/bin/kazoo foreground']);
    expect(out.text()).toBe('\nRelease built in _rel/kazoo\nStart it: _rel/kazoo/bin/kazoo foreground\n');
  });
});

describe('createReporter: quiet mode', () => {
  it('prints nothing but warnings', () => {
    const { r, out, err } = reporter({ quiet: true, tty: true });
    r.step('a');
    r.info('b');
    r.block(['c']);
    r.progress('node', 1, 2);
    r.warn('still shown');
    expect(out.text()).toBe('');
    expect(err.text()).toBe('warning: still shown\n');
  });
});

describe('createReporter: progress', () => {
  it('draws nothing when out is not a terminal', () => {
    const { r, out } = reporter({ tty: false });
    r.progress('node-v22.1.0', MiB, 2 * MiB);
    r.progress('node-v22.1.0', 2 * MiB, 2 * MiB);
    r.progress('node-v22.1.0', 3 * MiB, 0);
    expect(out.text()).toBe('');
  });

  it('draws a bar on a terminal, redrawn in place, closed by a newline when complete', () => {
    const { r, out } = reporter({ tty: true });
    r.progress('node', 0.5 * MiB, MiB);
    expect(out.chunks).toEqual([`\r  node [${'#'.repeat(15)}${' '.repeat(15)}] 0.5/1.0 MiB`]);
    r.progress('node', MiB, MiB);
    expect(out.chunks.slice(1)).toEqual([`\r  node [${'#'.repeat(30)}] 1.0/1.0 MiB`, '\n']);
    // The bar is closed: the next line starts right away.
    r.step('next');
    expect(out.chunks.slice(3)).toEqual(['* next\n']);
  });

  it('ends an open bar with a newline before the next step, info, warning or block', () => {
    for (const say of ['step', 'info', 'warn', 'block'] as const) {
      const { r, out, err } = reporter({ tty: true });
      r.progress('node', 0, 4 * MiB);
      expect(out.chunks).toEqual([`\r  node [${' '.repeat(30)}] 0.0/4.0 MiB`]);
      if (say === 'block') r.block(['done']);
      else r[say]('x');
      expect(out.chunks[1]).toBe('\n');
      if (say === 'warn') expect(err.text()).toBe('warning: x\n');
      // Only once: a second line needs no extra newline.
      const before = out.chunks.length;
      r.info('y');
      expect(out.chunks.slice(before)).toEqual(['y\n']);
    }
  });

  it('clamps the bar when more than the total arrives', () => {
    const { r, out } = reporter({ tty: true });
    r.progress('node', 3 * MiB, 2 * MiB);
    expect(out.chunks).toEqual([`\r  node [${'#'.repeat(30)}] 3.0/2.0 MiB`, '\n']);
  });

  it('shows a moving marker and the bytes so far when the total is unknown', () => {
    const { r, out } = reporter({ tty: true });
    r.progress('node', 0, 0);
    r.progress('node', 3 * MiB, 0);
    r.progress('node', 31.5 * MiB, -1);
    expect(out.chunks).toEqual([
      `\r  node [###${' '.repeat(30)}] 0.0 MiB`,
      `\r  node [${' '.repeat(3)}###${' '.repeat(27)}] 3.0 MiB`,
      `\r  node [ ###${' '.repeat(29)}] 31.5 MiB`,
    ]);
    // The bar stays open until something else is printed.
    r.step('fetched');
    expect(out.chunks.slice(3)).toEqual(['\n', '* fetched\n']);
  });
});

describe('createSilentReporter', () => {
  it('records the lines it would print, and ignores progress', () => {
    const r = createSilentReporter();
    r.step('a');
    r.info('b');
    r.warn('c');
    r.progress('node', 1, 2);
    r.block(['d', 'e']);
    expect(r.lines).toEqual(['* a', 'b', 'warning: c', 'd', 'e']);
  });
});

describe('displayPath', () => {
  const cwd = path.join(path.sep, 'home', 'me', 'proj');

  it('shows paths under the working directory relative to it', () => {
    expect(displayPath(path.join(cwd, 'rel', 'relx.config'), cwd)).toBe(path.join('rel', 'relx.config'));
  });

  it('shows the working directory itself as "."', () => {
    expect(displayPath(cwd, cwd)).toBe('.');
  });

  it('keeps paths outside the working directory absolute', () => {
    expect(displayPath(path.join(path.sep, 'home', 'me', 'other', 'x'), cwd)).toBe(path.join(path.sep, 'home', 'me', 'other', 'x'));
    expect(displayPath(path.join(path.sep, 'home', 'me'), cwd)).toBe(path.join(path.sep, 'home', 'me'));
    expect(displayPath(path.join(path.sep, 'home', 'me', 'projx'), cwd)).toBe(path.join(path.sep, 'home', 'me', 'projx'));
  });

  it('uses the process working directory by default', () => {
    expect(displayPath(path.join(process.cwd(), 'a', 'b'))).toBe(path.join('a', 'b'));
    expect(displayPath(process.cwd())).toBe('.');
  });
});
