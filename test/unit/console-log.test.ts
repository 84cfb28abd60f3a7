import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { captureStdio, ConsoleLog, logSettings } from '../../src/node/logs/console-log.js';
import { BootError } from '../../src/node/errors.js';

const compiled = pathToFileURL(
  path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'node', 'logs', 'console-log.js'),
).href;

let dir: string;
let file: string;
const open: ConsoleLog[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-consolelog-'));
  file = path.join(dir, 'log', 'kazoo_apps@host', 'console.log');
});

afterEach(() => {
  for (const log of open.splice(0)) log.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function consoleLog(maxBytes = 0, generations = 5): ConsoleLog {
  const log = new ConsoleLog({ file, maxBytes, generations });
  open.push(log);
  return log;
}

const read = (f: string): string => fs.readFileSync(f, 'utf8');

/** Ten-byte lines: `line 0001\n`. */
const line = (i: number): string => `line ${String(i).padStart(4, '0')}\n`;
const lines = (from: number, to: number): string => Array.from({ length: to - from + 1 }, (_, k) => line(from + k)).join('');

/** The names in the log's directory, sorted. */
const files = (): string[] => fs.readdirSync(path.dirname(file)).sort();

describe('ConsoleLog: the file', () => {
  it('creates the directory (0750) and appends to an existing file, counting its size', () => {
    const log = consoleLog();
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o750 & ~process.umask());
    log.write('one\n');
    log.close();
    const again = consoleLog();
    expect(again.size).toBe(4);
    again.write(new TextEncoder().encode('two\n'));
    expect(again.size).toBe(8);
    expect(read(file)).toBe('one\ntwo\n');
    expect(fs.statSync(file).mode & 0o777).toBe(0o640 & ~process.umask());
  });

  it('is written synchronously: each line is on disk when write returns', () => {
    const log = consoleLog();
    log.write('a\n');
    expect(read(file)).toBe('a\n');
    log.write('');
    expect(read(file)).toBe('a\n');
  });

  it('refuses impossible options', () => {
    expect(() => new ConsoleLog({ file, maxBytes: -1, generations: 5 })).toThrow(RangeError);
    expect(() => new ConsoleLog({ file, maxBytes: 1.5, generations: 5 })).toThrow(RangeError);
    expect(() => new ConsoleLog({ file, maxBytes: 10, generations: 0 })).toThrow(RangeError);
    expect(() => new ConsoleLog({ file, maxBytes: 10, generations: 1001 })).toThrow(RangeError);
  });

  it('ignores writes, reopen() and close() once closed', () => {
    const log = consoleLog();
    log.write('kept\n');
    log.close();
    expect(log.closed).toBe(true);
    log.write('dropped\n');
    log.reopen();
    log.close();
    expect(read(file)).toBe('kept\n');
  });
});

describe('ConsoleLog: rotation by size', () => {
  it('keeps N generations of at most maxBytes each, newest in .1, and drops the oldest', () => {
    const log = consoleLog(100, 3); // ten lines per file
    for (let i = 1; i <= 57; i++) log.write(line(i));
    expect(files()).toEqual(['console.log', 'console.log.1', 'console.log.2', 'console.log.3']);
    expect(read(`${file}.3`)).toBe(lines(21, 30));
    expect(read(`${file}.2`)).toBe(lines(31, 40));
    expect(read(`${file}.1`)).toBe(lines(41, 50));
    expect(read(file)).toBe(lines(51, 57));
    expect(log.size).toBe(70);
    for (const f of files()) expect(fs.statSync(path.join(path.dirname(file), f)).size).toBeLessThanOrEqual(100);
  });

  it('rotates before the write that would pass maxBytes, never splitting a chunk', () => {
    const log = consoleLog(25, 2);
    log.write('0123456789\n'); // 11
    log.write('0123456789\n'); // 22
    log.write('abc\n'); // 26 > 25: rotate first
    expect(read(`${file}.1`)).toBe('0123456789\n0123456789\n');
    expect(read(file)).toBe('abc\n');
    log.write('x'.repeat(60) + '\n'); // bigger than maxBytes: whole, in a file of its own
    expect(read(file)).toBe('x'.repeat(60) + '\n');
    expect(read(`${file}.1`)).toBe('abc\n');
    expect(read(`${file}.2`)).toBe('0123456789\n0123456789\n');
    log.write('after\n');
    expect(read(file)).toBe('after\n');
    expect(files()).toEqual(['console.log', 'console.log.1', 'console.log.2']);
  });

  it('keeps one generation when asked', () => {
    const log = consoleLog(20, 1);
    for (let i = 1; i <= 9; i++) log.write(line(i));
    expect(files()).toEqual(['console.log', 'console.log.1']);
    expect(read(`${file}.1`)).toBe(lines(7, 8));
    expect(read(file)).toBe(line(9));
  });

  it('never rotates with maxBytes 0', () => {
    const log = consoleLog(0, 5);
    for (let i = 1; i <= 500; i++) log.write(line(i));
    expect(files()).toEqual(['console.log']);
    expect(read(file)).toBe(lines(1, 500));
  });

  it('counts what the file held before it was opened', () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, lines(1, 9));
    const log = consoleLog(100, 2);
    log.write(line(10)); // exactly 100
    expect(files()).toEqual(['console.log']);
    log.write(line(11));
    expect(read(`${file}.1`)).toBe(lines(1, 10));
    expect(read(file)).toBe(line(11));
  });

  it('does not shift logrotate\'s files when the log was renamed away and not yet reopened', () => {
    const log = consoleLog(50, 3);
    log.write(line(1));
    fs.renameSync(file, `${file}-20250101`); // logrotate's dateext, no USR1 yet
    for (let i = 2; i <= 5; i++) log.write(line(i)); // still into the renamed file
    log.write(line(6)); // past 50 bytes: a fresh console.log instead of a rotation
    expect(files()).toEqual(['console.log', 'console.log-20250101']);
    expect(read(`${file}-20250101`)).toBe(lines(1, 5));
    expect(read(file)).toBe(line(6));
  });

  it('carries on in the current file when rotation fails', () => {
    const log = consoleLog(20, 1);
    fs.mkdirSync(`${file}.1`); // a non-empty directory: console.log -> console.log.1 cannot succeed
    fs.writeFileSync(path.join(`${file}.1`, 'x'), '');
    // Rotation fails at line 3; it is tried again only maxBytes later (line 5, then line 7).
    for (let i = 1; i <= 5; i++) log.write(line(i));
    expect(read(file)).toBe(lines(1, 5));
    fs.rmSync(`${file}.1`, { recursive: true });
    log.write(line(6));
    log.write(line(7));
    expect(read(`${file}.1`)).toBe(lines(1, 6));
    expect(read(file)).toBe(line(7));
  });
});

describe('ConsoleLog: one mode for every file, never world-readable (issue 10, item 16)', () => {
  it('the first, rotated and reopened files are 0640 in 0750 directories, whatever the umask', () => {
    const before = process.umask(0o000); // the worst umask: everything would be 0666 / 0777
    try {
      const log = consoleLog(20, 2);
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o750);
      expect(fs.statSync(path.dirname(path.dirname(file))).mode & 0o777).toBe(0o750);
      expect(fs.statSync(file).mode & 0o777).toBe(0o640);
      for (let i = 1; i <= 5; i++) log.write(line(i)); // rotates
      fs.renameSync(file, `${file}.old`);
      log.reopen();
      log.write(line(6));
      for (const f of files()) expect(fs.statSync(path.join(path.dirname(file), f)).mode & 0o777, f).toBe(0o640);
    } finally {
      process.umask(before);
    }
  });

  it('gives an existing 0644 file and 0755 directory the mode; RUNNER_LOG_MODE=0600 makes 0600 / 0700', () => {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    fs.chmodSync(path.dirname(file), 0o755);
    fs.writeFileSync(file, 'old\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    consoleLog().close();
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o750);
    const strict = new ConsoleLog({ file, maxBytes: 0, generations: 1, ...{ mode: logSettings({ RUNNER_LOG_MODE: '0600' }).mode } });
    open.push(strict);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(read(file)).toBe('old\n');
  });
});

describe('ConsoleLog: a full disk (issue 10, item 7)', () => {
  let mnt: string | undefined;
  let why = '';
  beforeAll(() => {
    mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-fulldisk-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { encoding: 'utf8' });
    if (r.status !== 0) {
      why = `mount -t tmpfs is not permitted here (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()})`;
      fs.rmSync(mnt, { recursive: true, force: true });
      mnt = undefined;
      console.warn(`SKIPPED the full-disk tests of ConsoleLog: ${why}`);
    }
  });
  afterAll(() => {
    if (!mnt) return;
    spawnSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('never throws: lines that cannot be written are counted, and noted in the log once space returns', (ctx) => {
    if (!mnt) return ctx.skip(why);
    const logFile = path.join(mnt, 'node', 'console.log');
    const log = new ConsoleLog({ file: logFile, maxBytes: 0, generations: 1, retryMs: 0 });
    open.push(log);
    const got: Buffer[] = [];
    log.subscribe((c) => got.push(c));
    const text = (i: number) => `line ${i} ${'x'.repeat(90)}\n`; // 100 bytes and more
    let i = 0;
    for (; i < 4000; i++) expect(() => log.write(text(i))).not.toThrow(); // ~400 KB into 256 KB
    expect(got).toHaveLength(4000); // attach still sees every line
    const d = log.dropped;
    expect(d.lines).toBeGreaterThan(1000);
    expect(d.unreported).toBe(d.lines);
    expect(d.lastError).toMatch(/^ENOSPC: /);
    // two lines at once that cannot be written count as two
    log.write('a\nb\n');
    expect(log.dropped.lines).toBe(d.lines + 2);
    const full = read(logFile);
    expect(full).not.toContain('could not be written');
    // space returns
    fs.truncateSync(logFile, 0);
    log.write('after\n');
    const after = read(logFile);
    // (the last failed write left part of a line, so the note starts on a line of its own)
    expect(after).toMatch(new RegExp(`^\\n?\\S+Z warn \\[console\\.log\\] ${d.lines + 2} log lines could not be written to ${logFile.replace(/[.]/g, '\\.')} since \\S+Z \\(ENOSPC: [^)]*\\) and are lost\nafter\n$`));
    expect(log.dropped).toEqual({ lines: d.lines + 2, unreported: 0, lastError: d.lastError });
  });

  it('on a quiet node the note comes by itself once space returns; a partial line is ended first', async (ctx) => {
    if (!mnt) return ctx.skip(why);
    const logFile = path.join(mnt, 'quiet', 'console.log');
    const log = new ConsoleLog({ file: logFile, maxBytes: 0, generations: 1, retryMs: 20 });
    open.push(log);
    const filler = path.join(mnt, 'filler');
    try {
      fs.writeFileSync(filler, Buffer.alloc(512 * 1024));
    } catch {
      // full
    }
    log.write(`${'y'.repeat(300_000)}\n`);
    expect(log.dropped.lines).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(log.dropped.unreported).toBe(1); // still full
    fs.rmSync(filler);
    for (let t = 0; t < 100 && log.dropped.unreported > 0; t++) await new Promise((r) => setTimeout(r, 20));
    expect(log.dropped.unreported).toBe(0);
    const lines = read(logFile).split('\n');
    expect(lines.at(-2)).toMatch(/warn \[console\.log\] 1 log line could not be written .* \(ENOSPC: .*\) and is lost$/);
    expect(lines.at(-1)).toBe('');
  });
});

describe('ConsoleLog: reopen (logrotate: rename, then USR1)', () => {
  it('writes to the renamed file until reopen, then to a new file; every line once, in order', () => {
    const log = consoleLog();
    for (let i = 1; i <= 50; i++) log.write(line(i));
    fs.renameSync(file, `${file}.1`);
    for (let i = 51; i <= 100; i++) log.write(line(i));
    expect(fs.existsSync(file)).toBe(false);
    log.reopen();
    for (let i = 101; i <= 150; i++) log.write(line(i));
    expect(read(`${file}.1`)).toBe(lines(1, 100));
    expect(read(file)).toBe(lines(101, 150));
    expect(log.size).toBe(500);
  });

  it("appends to the file logrotate's `create` made, and recreates a removed directory", () => {
    const log = consoleLog();
    log.write(line(1));
    fs.renameSync(file, `${file}.1`);
    fs.writeFileSync(file, ''); // create 0640
    log.reopen();
    log.write(line(2));
    expect(read(file)).toBe(line(2));
    fs.rmSync(path.dirname(file), { recursive: true });
    log.reopen();
    log.write(line(3));
    expect(read(file)).toBe(line(3));
  });

  it('loses no line when a writing process is rotated under load (rename + SIGUSR1, ten times)', async () => {
    const script = `
const { ConsoleLog } = await import(${JSON.stringify(compiled)});
const log = new ConsoleLog({ file: ${JSON.stringify(file)}, maxBytes: 0, generations: 1 });
process.on('SIGUSR1', () => log.reopen());
let n = 0, stop = false;
process.on('SIGTERM', () => { stop = true; });
const burst = () => {
  for (let k = 0; k < 100; k++) log.write('line ' + ++n + '\\n');
  if (!stop) return setImmediate(burst);
  log.close();
  process.stdout.write('wrote ' + n + '\\n');
};
process.stdout.write('ready\\n');
burst();
`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      while (!out.includes('ready\n')) await new Promise((r) => setTimeout(r, 5));
      const rotated: string[] = [];
      for (let k = 1; k <= 10; k++) {
        await new Promise((r) => setTimeout(r, 20));
        const to = `${file}.r${k}`;
        try {
          fs.renameSync(file, to);
          rotated.push(to);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // renamed before it reopened
        }
        if (k % 2 === 0) fs.writeFileSync(file, '', { flag: 'a' }); // half the time, like `create`
        child.kill('SIGUSR1');
      }
      await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const total = Number(/wrote (\d+)/.exec(out)?.[1]);
      expect(total).toBeGreaterThan(1000);
      const all = [...rotated, file].map(read).join('');
      const expected = Array.from({ length: total }, (_, i) => `line ${i + 1}\n`).join('');
      expect(all === expected, `the ${rotated.length + 1} files hold lines 1..${total} once each, in order`).toBe(true);
      expect(rotated.filter((f) => read(f).length > 0).length).toBeGreaterThanOrEqual(3); // it did rotate under the writer
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('ConsoleLog: subscribers (attach)', () => {
  it('get every chunk as a Buffer, until they unsubscribe', () => {
    const log = consoleLog();
    const seen: Buffer[] = [];
    const unsubscribe = log.subscribe((b) => seen.push(b));
    log.write('a\n');
    log.write(Uint8Array.from([0x62, 0x0a]));
    unsubscribe();
    log.write('c\n');
    expect(seen.every((b) => Buffer.isBuffer(b))).toBe(true);
    expect(seen.map((b) => b.toString())).toEqual(['a\n', 'b\n']);
    expect(read(file)).toBe('a\nb\nc\n');
  });

  it('get a copy: changing the written bytes later does not change what they hold', () => {
    const log = consoleLog();
    let got: Buffer | undefined;
    log.subscribe((b) => (got = b));
    const bytes = Buffer.from('xy\n');
    log.write(bytes);
    bytes[0] = 0x7a;
    expect(got?.toString()).toBe('xy\n');
  });

  it('drop a subscriber that throws, and the write and the others go on', () => {
    const log = consoleLog();
    const good: string[] = [];
    let calls = 0;
    log.subscribe(() => {
      calls++;
      throw new Error('attached client went away');
    });
    log.subscribe((b) => good.push(b.toString()));
    expect(() => log.write('one\n')).not.toThrow();
    log.write('two\n');
    expect(calls).toBe(1);
    expect(good).toEqual(['one\n', 'two\n']);
    expect(read(file)).toBe('one\ntwo\n');
  });

  it('do not see writes made from inside a subscriber again (no feedback loop), the file does', () => {
    const log = consoleLog();
    const seen: string[] = [];
    log.subscribe((b) => {
      seen.push(b.toString());
      log.write(`echo ${b.toString()}`);
    });
    log.write('x\n');
    expect(seen).toEqual(['x\n']);
    expect(read(file)).toBe('x\necho x\n');
  });

  it('are dropped on close()', () => {
    const log = consoleLog();
    const seen: string[] = [];
    log.subscribe((b) => seen.push(b.toString()));
    log.close();
    log.write('late\n');
    expect(seen).toEqual([]);
  });
});

describe('captureStdio', () => {
  it('routes process.stdout/stderr.write into the log, stream signature kept; restore puts them back', async () => {
    const log = consoleLog();
    const stdoutWrite = process.stdout.write;
    const hadOwn = Object.hasOwn(process.stdout, 'write');
    const restore = captureStdio(log);
    let callbackArg: unknown = 'not called';
    let returned: boolean | undefined;
    try {
      returned = process.stdout.write('out\n', () => (callbackArg = null));
      expect(callbackArg).toBe('not called'); // the callback is asynchronous
      process.stderr.write('aGkK', 'base64'); // "hi\n"
      process.stdout.write('caf\u00e9\n', 'utf8', (err) => (callbackArg = err ?? 'ok'));
      process.stdout.write(Uint8Array.from([0x21, 0x0a]));
      expect(() => process.stdout.write('x', 'klingon' as BufferEncoding)).toThrow(TypeError);
      expect(() => process.stdout.write(42 as unknown as string)).toThrow(TypeError);
    } finally {
      restore();
    }
    await new Promise((r) => process.nextTick(r));
    expect(returned).toBe(true);
    expect(callbackArg).toBe('ok');
    expect(read(file)).toBe('out\nhi\ncafé\n!\n');
    expect(process.stdout.write).toBe(stdoutWrite);
    expect(Object.hasOwn(process.stdout, 'write')).toBe(hadOwn);
    restore(); // idempotent
  });

  it('hands a write error to the callback, and swallows it without one', async () => {
    const log = consoleLog();
    const failing = { write: () => { throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }); } };
    const restore = captureStdio(failing as unknown as ConsoleLog);
    let got: unknown;
    try {
      expect(() => process.stdout.write('lost\n')).not.toThrow();
      process.stdout.write('lost\n', (err) => (got = err));
    } finally {
      restore();
    }
    await new Promise((r) => process.nextTick(r));
    expect((got as NodeJS.ErrnoException).code).toBe('ENOSPC');
    log.close();
  });

  it('routes console.* into the file in a real process, and restore sends output back to stdout', async () => {
    const script = `
const { ConsoleLog, captureStdio } = await import(${JSON.stringify(compiled)});
const log = new ConsoleLog({ file: ${JSON.stringify(file)}, maxBytes: 0, generations: 1 });
const live = [];
log.subscribe((b) => live.push(b.toString()));
const restore = captureStdio(log);
try {
  console.log('hello %s', 'log');
  console.error('oops');
  console.info({ a: 1 });
  console.warn('careful');
} finally {
  restore();
}
console.log('after restore');
// A wrapper installed after ours survives restore; ours then passes writes through.
const again = captureStdio(log);
const ours = process.stdout.write;
process.stdout.write = function (...args) { return ours.apply(this, args); };
console.log('into the file');
again();
console.log('through both wrappers to stdout');
process.stdout.write(JSON.stringify({ live }) + '\\n');
`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(read(file)).toBe('hello log\noops\n{ a: 1 }\ncareful\ninto the file\n');
    const [first, second, json] = out.trimEnd().split('\n');
    expect([first, second]).toEqual(['after restore', 'through both wrappers to stdout']);
    expect(JSON.parse(json as string)).toEqual({ live: ['hello log\n', 'oops\n', '{ a: 1 }\n', 'careful\n', 'into the file\n'] });
  });
});

describe('logSettings', () => {
  const failure = (env: NodeJS.ProcessEnv): BootError => {
    try {
      logSettings(env);
    } catch (err) {
      expect(err).toBeInstanceOf(BootError);
      return err as BootError;
    }
    throw new Error('expected a BootError');
  };

  it('defaults to 10 MiB and 5 generations, or to the given defaults', () => {
    expect(logSettings({})).toEqual({ maxBytes: 10 * 1024 * 1024, generations: 5, mode: 0o640 });
    expect(logSettings({ RUNNER_LOG_MAX_BYTES: '', RUNNER_LOG_GENERATIONS: ' ' })).toEqual({ maxBytes: 10485760, generations: 5, mode: 0o640 });
    expect(logSettings({}, { maxBytes: 1000, generations: 2 })).toEqual({ maxBytes: 1000, generations: 2, mode: 0o640 });
    expect(logSettings({ RUNNER_LOG_GENERATIONS: '9' }, { maxBytes: 1000, generations: 2 })).toEqual({ maxBytes: 1000, generations: 9, mode: 0o640 });
  });

  it.each([
    ['0640', 0o640],
    ['600', 0o600],
    ['0660', 0o660],
  ])('reads RUNNER_LOG_MODE=%j', (raw, mode) => {
    expect(logSettings({ RUNNER_LOG_MODE: raw }).mode).toBe(mode);
  });

  it.each(['0400', '640x', '08', 'rw-r-----', '06400'])('refuses RUNNER_LOG_MODE=%j', (raw) => {
    const err = failure({ RUNNER_LOG_MODE: raw });
    expect(err.code).toBe('EENV');
    expect(err.message).toContain(`RUNNER_LOG_MODE=${JSON.stringify(raw)}`);
    expect(err.message).toMatch(/0640 \(the default\) or 0600/);
  });

  it.each([
    ['10485760', 10485760],
    ['10M', 10 * 1024 ** 2],
    ['10m', 10 * 1024 ** 2],
    ['10MB', 10 * 1024 ** 2],
    ['10MiB', 10 * 1024 ** 2],
    [' 10 M ', 10 * 1024 ** 2],
    ['512K', 512 * 1024],
    ['512kb', 512 * 1024],
    ['1G', 1024 ** 3],
    ['100B', 100],
    ['0', 0],
  ])('reads RUNNER_LOG_MAX_BYTES=%j as %d bytes', (raw, bytes) => {
    expect(logSettings({ RUNNER_LOG_MAX_BYTES: raw }).maxBytes).toBe(bytes);
  });

  it.each(['ten', '10X', '10T', '-1', '1.5M', 'M', '10 M B', '99999999999G'])('refuses RUNNER_LOG_MAX_BYTES=%j', (raw) => {
    const err = failure({ RUNNER_LOG_MAX_BYTES: raw });
    expect(err.code).toBe('EENV');
    expect(err.message).toContain(`RUNNER_LOG_MAX_BYTES=${JSON.stringify(raw)}`);
    expect(err.message).toMatch(/10485760, 10M, 512K, 1G/);
  });

  it.each([
    ['1', 1],
    ['5', 5],
    [' 12 ', 12],
    ['1000', 1000],
  ])('reads RUNNER_LOG_GENERATIONS=%j', (raw, n) => {
    expect(logSettings({ RUNNER_LOG_GENERATIONS: raw }).generations).toBe(n);
  });

  it.each(['0', '1001', '-2', '2.5', 'five', '1e2'])('refuses RUNNER_LOG_GENERATIONS=%j', (raw) => {
    const err = failure({ RUNNER_LOG_GENERATIONS: raw });
    expect(err.code).toBe('EENV');
    expect(err.message).toContain(`RUNNER_LOG_GENERATIONS=${JSON.stringify(raw)}`);
    expect(err.message).toMatch(/whole number from 1 to 1000/);
  });
});
