import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAlive, parsePid, readPidFile, removePidFile, writePidFile } from '../../src/node/supervision/pid-file.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-pidfile-'));
  file = path.join(dir, 'node.pid');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('writePidFile', () => {
  it('writes "<pid>\\n", this process by default', () => {
    writePidFile(file);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${process.pid}\n`);
    writePidFile(file, 4242);
    expect(fs.readFileSync(file, 'utf8')).toBe('4242\n');
  });

  it('makes the file 0644 whatever the umask', () => {
    const previous = process.umask(0o077);
    try {
      writePidFile(file, 12);
    } finally {
      process.umask(previous);
    }
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
  });

  it('replaces the file by rename (a new inode), leaving no temp file behind', () => {
    writePidFile(file, 1000);
    const before = fs.statSync(file).ino;
    writePidFile(file, 2000);
    expect(fs.statSync(file).ino).not.toBe(before);
    expect(fs.readdirSync(dir)).toEqual(['node.pid']);
  });

  it('throws, and leaves nothing behind, when it cannot write', () => {
    fs.mkdirSync(file); // a directory where the pid file should go: rename fails
    expect(() => writePidFile(file, 7)).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['node.pid']);
    expect(() => writePidFile(path.join(dir, 'missing', 'node.pid'))).toThrow(/ENOENT/);
  });

  it('refuses what is not a pid', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => writePidFile(file, bad)).toThrow(RangeError);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('never shows a reader a partial file while another process rewrites it', async () => {
    const compiled = pathToFileURL(
      path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'node', 'supervision', 'pid-file.js'),
    ).href;
    writePidFile(file, 1);
    const writer = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const { writePidFile } = await import(${JSON.stringify(compiled)});
for (let i = 0; i < 3000; i++) writePidFile(${JSON.stringify(file)}, 100000 + i);`],
      { stdio: 'inherit' },
    );
    const exited = new Promise<number | null>((resolve) => writer.once('exit', resolve));
    let running = true;
    void exited.then(() => (running = false));
    let reads = 0;
    while (running) {
      const text = fs.readFileSync(file, 'utf8');
      expect(text).toMatch(/^(1|1\d{5})\n$/);
      reads++;
      if (reads % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(await exited).toBe(0);
    expect(readPidFile(file)).toBe(102999);
    expect(reads).toBeGreaterThan(10);
  });
});

describe('readPidFile', () => {
  it('reads the pid, whitespace allowed', () => {
    for (const text of ['123\n', '123', ' 123 \n', '123\r\n']) {
      fs.writeFileSync(file, text);
      expect(readPidFile(file)).toBe(123);
    }
  });

  it('is undefined for a missing file or a missing directory', () => {
    expect(readPidFile(file)).toBeUndefined();
    expect(readPidFile(path.join(dir, 'no', 'node.pid'))).toBeUndefined();
    fs.writeFileSync(path.join(dir, 'plain'), '');
    expect(readPidFile(path.join(dir, 'plain', 'node.pid'))).toBeUndefined(); // ENOTDIR
  });

  it('is undefined for anything but one positive integer', () => {
    for (const text of ['', '\n', 'abc', '12 13', '12\n13\n', '-5', '0', '1.5', '0x10', '1e3', '99999999999', '4294967296']) {
      fs.writeFileSync(file, text);
      expect(readPidFile(file), JSON.stringify(text)).toBeUndefined();
    }
  });

  it('throws on other read errors', () => {
    fs.mkdirSync(file);
    expect(() => readPidFile(file)).toThrow(/EISDIR/);
  });

  it('parsePid does the same on text', () => {
    expect(parsePid('77\n')).toBe(77);
    expect(parsePid('77 x')).toBeUndefined();
  });
});

describe('isAlive', () => {
  it('is true for this process and for pid 1 (EPERM, when not root, counts as alive)', () => {
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(1)).toBe(true);
  });

  it('is false for a process that has exited', () => {
    const { pid } = spawnSync(process.execPath, ['-e', '0']);
    expect(isAlive(pid)).toBe(false);
  });

  it('is false for what is not a single process (0 and -1 address groups)', () => {
    for (const pid of [0, -1, -process.pid, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 40]) {
      expect(isAlive(pid), String(pid)).toBe(false);
    }
  });
});

describe('removePidFile', () => {
  it('removes the file while it holds our pid', () => {
    writePidFile(file);
    removePidFile(file);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('removes the file of an explicit pid', () => {
    writePidFile(file, 555);
    removePidFile(file, 555);
    expect(fs.existsSync(file)).toBe(false);
  });

  it("never removes a successor's file", () => {
    writePidFile(file, 556);
    removePidFile(file);
    removePidFile(file, 555);
    expect(readPidFile(file)).toBe(556);
  });

  it('leaves a malformed file and tolerates a missing one', () => {
    fs.writeFileSync(file, 'junk');
    removePidFile(file);
    expect(fs.readFileSync(file, 'utf8')).toBe('junk');
    fs.rmSync(file);
    expect(() => removePidFile(file)).not.toThrow();
  });
});
