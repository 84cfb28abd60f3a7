import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { thrown } from '../helpers/errors.js';
import { cookieHostnames, readIniCookie, relEnvName, resolveCookie, type CookieOptions } from '../../src/node/control/cookie.js';
import { BootError } from '../../src/node/errors.js';
import { parseIni } from '../../src/node/control/ini.js';

const isRoot = process.getuid?.() === 0;

let tmp: string;
let root: string;
let etcDir: string;
let iniPath: string;

/** Writes `text` to the absolute path `file` with `mode` (default 0600: a proper cookie file). */
function write(file: string, text: string, mode = 0o600): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  fs.chmodSync(file, mode);
  return file;
}

function opts(extra: Partial<CookieOptions> = {}): CookieOptions {
  return { relName: 'kazoo', nodeType: 'ecallmgr', root, etcDir, env: {}, hostname: 'kazoo1.example.com', ...extra };
}

/** The BootError thrown by `fn`. */
function failure(fn: () => unknown): BootError {
  return thrown(fn, BootError);
}

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-cookie-'));
  root = path.join(tmp, 'rel');
  etcDir = path.join(tmp, 'etc');
  iniPath = path.join(etcDir, 'kazoo', 'config.ini');
  fs.mkdirSync(path.join(root, 'releases'), { recursive: true });
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('parseIni', () => {
  it('keeps repeated sections apart, in order, with their header lines', () => {
    const text = [
      '; Kazoo config',
      '# another comment',
      '[ecallmgr]',
      'cookie = generic',
      '',
      '[ecallmgr]',
      'host = "kazoo1.example.com"',
      "cookie = 'quoted value'",
      '[kazoo_apps]',
      '  zone   =   local  ',
    ].join('\n');
    expect(parseIni(text, 'config.ini')).toEqual([
      { name: 'ecallmgr', line: 3, entries: { cookie: 'generic' }, keyLines: { cookie: 4 } },
      { name: 'ecallmgr', line: 6, entries: { host: 'kazoo1.example.com', cookie: 'quoted value' }, keyLines: { host: 7, cookie: 8 } },
      { name: 'kazoo_apps', line: 9, entries: { zone: 'local' }, keyLines: { zone: 10 } },
    ]);
  });

  it('cuts inline comments from unquoted values only, and keeps "=" inside values', () => {
    const [s] = parseIni(
      ['[a]', 'x = 1 ; one', 'y = 2 # two', 'z = "a ; b" ; c', 'url = http://h/?a=b', 'empty =', 'mismatched = "abc'].join('\n'),
      'f.ini',
    );
    expect(s!.entries).toEqual({ x: '1', y: '2', z: 'a ; b', url: 'http://h/?a=b', empty: '', mismatched: '"abc' });
  });

  it('reads CRLF files with a BOM; a repeated key keeps its last value', () => {
    const [s] = parseIni('\uFEFF[a]\r\nk = 1\r\nk = 2\r\n', 'f.ini');
    expect(s).toEqual({ name: 'a', line: 1, entries: { k: '2' }, keyLines: { k: 3 } });
  });

  it('refuses a key outside any section, naming file:line and the fix', () => {
    const err = failure(() => parseIni('; top\ncookie = x\n[a]\n', '/etc/kazoo/config.ini'));
    expect(err.code).toBe('EINI');
    expect(err.message).toBe('/etc/kazoo/config.ini:2: key outside any section; put it under [section]');
  });

  it('refuses malformed lines and headers, naming file:line', () => {
    expect(failure(() => parseIni('[a]\njust words\n', 'f.ini')).message).toBe(
      'f.ini:2: expected key = value or [section], found "just words"',
    );
    expect(failure(() => parseIni('[a\n', 'f.ini')).message).toBe('f.ini:1: malformed section header "[a"; expected [name]');
    expect(failure(() => parseIni('[ ]\n', 'f.ini')).message).toBe('f.ini:1: empty section name []; expected [name]');
    expect(failure(() => parseIni('[a]\n = v\n', 'f.ini')).message).toBe('f.ini:2: no key before "="; expected key = value');
  });
});

describe('cookieHostnames / relEnvName', () => {
  it('gives the full and the short hostname, lower-cased, without a trailing dot', () => {
    expect(cookieHostnames('Kazoo1.Example.COM.')).toEqual(['kazoo1.example.com', 'kazoo1']);
    expect(cookieHostnames('kazoo1')).toEqual(['kazoo1']);
  });

  it('upper-cases the release name and turns other characters into _', () => {
    expect(relEnvName('kazoo')).toBe('KAZOO');
    expect(relEnvName('my-rel.v2')).toBe('MY_REL_V2');
  });
});

describe('resolveCookie: the order of the sources', () => {
  /** Every source present, each with its own cookie. */
  function everySource(): string {
    write(iniPath, '[ecallmgr]\ncookie = from-ini\n');
    write(path.join(root, 'releases', 'COOKIE'), 'from-file\n', 0o400);
    return write(path.join(tmp, 'vm.args'), '-name x\n-setcookie from-vmargs\n', 0o644);
  }

  it('a. <NAME>_COOKIE wins over everything', () => {
    const vmArgsFile = everySource();
    const r = resolveCookie(opts({ vmArgsFile, env: { KAZOO_COOKIE: 'from-env' } }));
    expect(r).toEqual({ cookie: 'from-env', source: 'KAZOO_COOKIE', tried: ['KAZOO_COOKIE'] });
  });

  it('a. the variable name comes from the release name', () => {
    const r = resolveCookie(opts({ relName: 'my-rel', env: { MY_REL_COOKIE: 'c', KAZOO_COOKIE: 'no' } }));
    expect(r.source).toBe('MY_REL_COOKIE');
    expect(r.cookie).toBe('c');
  });

  it('a. an empty <NAME>_COOKIE counts as unset', () => {
    const vmArgsFile = everySource();
    expect(resolveCookie(opts({ vmArgsFile, env: { KAZOO_COOKIE: '' } })).cookie).toBe('from-ini');
  });

  it('b. then /etc/<name>/config.ini, section [<node type>]', () => {
    const vmArgsFile = everySource();
    const r = resolveCookie(opts({ vmArgsFile }));
    expect(r).toEqual({
      cookie: 'from-ini',
      source: `${iniPath} [ecallmgr]`,
      tried: ['KAZOO_COOKIE (not set)', `${iniPath} [ecallmgr]`],
    });
  });

  it('b. $<NAME>_CONFIG replaces the /etc path', () => {
    everySource();
    const other = write(path.join(tmp, 'other.ini'), '[ecallmgr]\ncookie = from-env-ini\n');
    const r = resolveCookie(opts({ env: { KAZOO_CONFIG: other } }));
    expect(r.cookie).toBe('from-env-ini');
    expect(r.source).toBe(`${other} [ecallmgr]`);
  });

  it('b. $<NAME>_CONFIG set to a missing file is an error naming it, not a fall-through', () => {
    everySource();
    const missing = path.join(tmp, 'nope', 'config.ini');
    const err = failure(() => resolveCookie(opts({ env: { KAZOO_CONFIG: missing } })));
    expect(err.code).toBe('ECOOKIE');
    expect(err.message).toBe(`KAZOO_CONFIG is set to ${missing}, which does not exist; fix the path or unset KAZOO_CONFIG`);
  });

  // The contract's vm.args rules (contract/vm-args.ts, the build's): a comment is a whole line,
  // one pair of quotes around a whole value goes (as relx's shell takes it); a directive is a line's first word.
  it('c. then -setcookie in the node\'s vm.args (comment lines skipped, quotes around it removed, last one wins)', () => {
    const vmArgsFile = write(
      path.join(tmp, 'vm.args'),
      ['## -setcookie commented-out', '  # -setcookie indented-comment', '-name ecallmgr@h', '-setcookie first', '--x=1 -setcookie not-a-directive', '-setcookie "second"'].join('\n'),
      0o644,
    );
    write(path.join(root, 'releases', 'COOKIE'), 'from-file', 0o400);
    const r = resolveCookie(opts({ vmArgsFile }));
    expect(r).toEqual({
      cookie: 'second',
      source: 'vm.args -setcookie',
      tried: ['KAZOO_COOKIE (not set)', `${iniPath} (missing)`, 'vm.args -setcookie'],
    });
  });

  it('d. then releases/COOKIE, trimmed', () => {
    const vmArgsFile = write(path.join(tmp, 'vm.args'), '-name ecallmgr@h\n', 0o644);
    write(path.join(root, 'releases', 'COOKIE'), '  from-file\n', 0o400);
    const r = resolveCookie(opts({ vmArgsFile }));
    expect(r).toEqual({
      cookie: 'from-file',
      source: 'releases/COOKIE',
      tried: ['KAZOO_COOKIE (not set)', `${iniPath} (missing)`, `vm.args -setcookie (none in ${vmArgsFile})`, 'releases/COOKIE'],
    });
  });

  it('d. a vm.args path that does not exist is passed over', () => {
    write(path.join(root, 'releases', 'COOKIE'), 'from-file', 0o400);
    const vmArgsFile = path.join(tmp, 'missing.vm.args');
    const r = resolveCookie(opts({ vmArgsFile }));
    expect(r.cookie).toBe('from-file');
    expect(r.tried).toContain(`vm.args -setcookie (none in ${vmArgsFile})`);
  });

  it('nothing found: ECOOKIE listing every place tried and the two ways out', () => {
    const vmArgsFile = write(path.join(tmp, 'vm.args'), '-name ecallmgr@h\n', 0o644);
    const err = failure(() => resolveCookie(opts({ vmArgsFile })));
    expect(err.code).toBe('ECOOKIE');
    expect(err.message).toBe(
      'no cookie for node type ecallmgr; tried: KAZOO_COOKIE (not set), ' +
        `${iniPath} (missing), vm.args -setcookie (none in ${vmArgsFile}), ${path.join(root, 'releases', 'COOKIE')} (missing); ` +
        `set KAZOO_COOKIE or add cookie = ... under [ecallmgr] in ${iniPath}`,
    );
  });
});

describe('resolveCookie: INI sections and hosts', () => {
  it('a section whose host = is this host wins over a generic one, before or after it', () => {
    write(
      iniPath,
      ['[ecallmgr]', 'cookie = generic-1', '[ecallmgr]', 'host = kazoo1.example.com', 'cookie = mine', '[ecallmgr]', 'cookie = generic-2'].join('\n'),
    );
    const r = resolveCookie(opts());
    expect(r.cookie).toBe('mine');
    expect(r.source).toBe(`${iniPath} [ecallmgr] (host = kazoo1.example.com)`);
  });

  it('host = may be the short name, in any case, quoted', () => {
    write(iniPath, ['[ecallmgr]', 'cookie = generic', '[ecallmgr]', 'host = "KAZOO1"', 'cookie = mine'].join('\n'));
    expect(resolveCookie(opts()).cookie).toBe('mine');
  });

  it('a section for another host is ignored', () => {
    write(iniPath, ['[ecallmgr]', 'host = kazoo2.example.com', 'cookie = theirs', '[ecallmgr]', 'cookie = generic'].join('\n'));
    const r = resolveCookie(opts());
    expect(r.cookie).toBe('generic');
    expect(r.source).toBe(`${iniPath} [ecallmgr]`);
  });

  it('only another host\'s section: passed over, and tried says so', () => {
    write(iniPath, ['[ecallmgr]', 'host = kazoo2.example.com', 'cookie = theirs'].join('\n'));
    write(path.join(root, 'releases', 'COOKIE'), 'from-file', 0o400);
    const r = resolveCookie(opts());
    expect(r.cookie).toBe('from-file');
    expect(r.tried).toContain(`${iniPath} [ecallmgr] (only for host kazoo2.example.com)`);
  });

  it('this host\'s section without a cookie key falls back to the generic section\'s key', () => {
    write(iniPath, ['[ecallmgr]', 'cookie = generic', '[ecallmgr]', 'host = kazoo1', 'zone = z1'].join('\n'));
    expect(resolveCookie(opts()).cookie).toBe('generic');
  });

  it('uses the section of the node type only', () => {
    write(iniPath, ['[kazoo_apps]', 'cookie = apps', '[ecallmgr]', 'cookie = ecm'].join('\n'));
    expect(resolveCookie(opts({ nodeType: 'kazoo_apps' })).cookie).toBe('apps');
    expect(resolveCookie(opts()).cookie).toBe('ecm');
  });

  it('no such section, or no cookie key: passed over, and tried says which', () => {
    write(path.join(root, 'releases', 'COOKIE'), 'from-file', 0o400);
    write(iniPath, '[kazoo_apps]\ncookie = apps\n');
    expect(resolveCookie(opts()).tried).toEqual(['KAZOO_COOKIE (not set)', `${iniPath} [ecallmgr] (no such section)`, 'releases/COOKIE']);
    write(iniPath, '[ecallmgr]\nzone = z\n');
    expect(resolveCookie(opts()).tried).toEqual(['KAZOO_COOKIE (not set)', `${iniPath} [ecallmgr] (no cookie key)`, 'releases/COOKIE']);
  });

  it('a malformed INI file is an EINI error naming file:line', () => {
    write(iniPath, 'cookie = x\n');
    const err = failure(() => resolveCookie(opts()));
    expect(err.code).toBe('EINI');
    expect(err.message).toBe(`${iniPath}:1: key outside any section; put it under [section]`);
  });
});

describe('resolveCookie: refusals', () => {
  it('refuses an INI file other users can read, with the chmod, and does not fall through', () => {
    write(iniPath, '[ecallmgr]\ncookie = c\n', 0o644);
    write(path.join(root, 'releases', 'COOKIE'), 'from-file', 0o400);
    const err = failure(() => resolveCookie(opts()));
    expect(err.code).toBe('ECOOKIE');
    expect(err.message).toBe(`${iniPath} is readable by other users (mode 0644); chmod 600 ${iniPath}`);
  });

  it('refuses a releases/COOKIE other users can read', () => {
    const file = write(path.join(root, 'releases', 'COOKIE'), 'c', 0o604);
    const err = failure(() => resolveCookie(opts()));
    expect(err.code).toBe('ECOOKIE');
    expect(err.message).toBe(`${file} is readable by other users (mode 0604); chmod 600 ${file}`);
  });

  it('accepts a file its group can read (0640)', () => {
    write(iniPath, '[ecallmgr]\ncookie = c\n', 0o640);
    expect(resolveCookie(opts()).cookie).toBe('c');
  });

  it('an INI file it cannot read is an error naming it', () => {
    if (isRoot) {
      // root reads a mode-000 file anyway (no EACCES); check the same path with a directory instead.
      fs.mkdirSync(iniPath, { recursive: true, mode: 0o700 });
      const err = failure(() => resolveCookie(opts()));
      expect(err.code).toBe('ECOOKIE');
      expect(err.message).toBe(`cannot read the cookie from ${iniPath}: it is not a regular file; replace it with one (mode 600)`);
      return;
    }
    write(iniPath, '[ecallmgr]\ncookie = c\n', 0o000);
    const err = failure(() => resolveCookie(opts()));
    expect(err.code).toBe('ECOOKIE');
    expect(err.message).toContain(`cannot read ${iniPath}: permission denied`);
  });

  it('an empty cookie is an error naming where it is: the line of the key, not of the section', () => {
    write(iniPath, '[ecallmgr]\nzone = z\ncookie =\n');
    expect(failure(() => resolveCookie(opts())).message).toBe(
      `${iniPath}:3: [ecallmgr] has an empty cookie; set cookie = <value> or remove the line`,
    );
    // Issue 10, item 22: the key on line 2 was reported at line 1 (the [section] header); a
    // repeated key is named where its last (winning) value is.
    write(iniPath, '[ecallmgr]\ncookie = ""\n');
    expect(failure(() => resolveCookie(opts())).message).toBe(`${iniPath}:2: [ecallmgr] has an empty cookie; set cookie = <value> or remove the line`);
    write(iniPath, '[ecallmgr]\ncookie = old\n\n; later\ncookie =\n');
    expect(failure(() => resolveCookie(opts())).message.startsWith(`${iniPath}:5: `)).toBe(true);
    fs.rmSync(iniPath);
    const file = write(path.join(root, 'releases', 'COOKIE'), '\n', 0o400);
    expect(failure(() => resolveCookie(opts())).message).toBe(
      `${file} is empty; put a cookie in it (and chmod 400 ${file}) or set KAZOO_COOKIE`,
    );
    const vmArgsFile = write(path.join(tmp, 'vm.args'), '-name x\n-setcookie\n', 0o644);
    expect(failure(() => resolveCookie(opts({ vmArgsFile }))).message).toBe(
      `${vmArgsFile}:2: -setcookie needs an argument; write -setcookie COOKIE`,
    );
  });
});

describe('readIniCookie (make read-release-cookie): the INI file only', () => {
  it('reads [<node type>] cookie, this host\'s section first', () => {
    write(iniPath, ['[ecallmgr]', 'cookie = generic', '[ecallmgr]', 'host = kazoo1.example.com', 'cookie = mine'].join('\n'));
    expect(readIniCookie(opts())).toEqual({
      cookie: 'mine',
      source: `${iniPath} [ecallmgr] (host = kazoo1.example.com)`,
      tried: [`${iniPath} [ecallmgr] (host = kazoo1.example.com)`],
    });
  });

  it('ignores <NAME>_COOKIE and releases/COOKIE', () => {
    write(iniPath, '[ecallmgr]\ncookie = ini\n');
    write(path.join(root, 'releases', 'COOKIE'), 'from-file', 0o400);
    expect(readIniCookie(opts({ env: { KAZOO_COOKIE: 'env' } })).cookie).toBe('ini');
  });

  it('reads $<NAME>_CONFIG when set', () => {
    const file = write(path.join(tmp, 'x', 'config.ini'), '[kazoo_apps]\ncookie = apps\n');
    expect(readIniCookie(opts({ nodeType: 'kazoo_apps', env: { KAZOO_CONFIG: file } })).cookie).toBe('apps');
  });

  it('missing file: names the path, the section and KAZOO_CONFIG', () => {
    write(path.join(root, 'releases', 'COOKIE'), 'from-file', 0o400);
    const err = failure(() => readIniCookie(opts()));
    expect(err.code).toBe('ECOOKIE');
    expect(err.message).toBe(
      `no cookie for [ecallmgr]: ${iniPath} does not exist; create it with [ecallmgr] and cookie = ..., or point KAZOO_CONFIG at the INI file`,
    );
  });

  it('$<NAME>_CONFIG set but missing: names the variable and the path', () => {
    const missing = path.join(tmp, 'x', 'config.ini');
    expect(failure(() => readIniCookie(opts({ env: { KAZOO_CONFIG: missing } }))).message).toBe(
      `KAZOO_CONFIG is set to ${missing}, which does not exist; fix the path or unset KAZOO_CONFIG`,
    );
  });

  it('missing section: names the file, the section and the sections there are', () => {
    const file = write(path.join(tmp, 'x', 'config.ini'), '[kazoo_apps]\ncookie = a\n[zone]\nname = z\n[kazoo_apps]\nhost = h\n');
    const err = failure(() => readIniCookie(opts({ env: { KAZOO_CONFIG: file } })));
    expect(err.code).toBe('ECOOKIE');
    expect(err.message).toBe(`no [ecallmgr] section in ${file} (sections: kazoo_apps, zone); add one with cookie = ...`);
    write(file, '; nothing yet\n');
    expect(failure(() => readIniCookie(opts({ env: { KAZOO_CONFIG: file } }))).message).toBe(
      `no [ecallmgr] section in ${file} (sections: none); add one with cookie = ...`,
    );
  });

  it('only another host\'s section: says which host it is for and which this is', () => {
    write(iniPath, '[ecallmgr]\nhost = kazoo2\ncookie = theirs\n');
    expect(failure(() => readIniCookie(opts())).message).toBe(
      `no [ecallmgr] section for this host in ${iniPath} (found [ecallmgr] only for host kazoo2; ` +
        'this host is kazoo1.example.com or kazoo1); add one without host = or with host = kazoo1.example.com, with cookie = ...',
    );
  });

  it('missing key: names the file, line and section', () => {
    write(iniPath, '[zone]\nname = z\n[ecallmgr]\nzone = z\n');
    expect(failure(() => readIniCookie(opts())).message).toBe(`no cookie in [ecallmgr] at ${iniPath}:3; add cookie = ... under it`);
  });

  it('refuses a world-readable INI file too', () => {
    write(iniPath, '[ecallmgr]\ncookie = c\n', 0o644);
    expect(failure(() => readIniCookie(opts())).message).toBe(`${iniPath} is readable by other users (mode 0644); chmod 600 ${iniPath}`);
  });
});
