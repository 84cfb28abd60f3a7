/**
 * The cookie: the one resolution every command uses, in this order, first hit wins:
 *
 *   a. `<NAME>_COOKIE` in the environment (NAME: the release name upper-cased, every character
 *      other than A-Z and 0-9 turned into `_`, e.g. KAZOO_COOKIE);
 *   b. the INI file `$<NAME>_CONFIG` (it must exist when set), else `<etcDir>/<name>/config.ini`
 *      when it exists: the `cookie` key of the section named after the node type. Sections may
 *      repeat: one whose `host =` is this host (full or short name) wins over one without
 *      `host`; one for another host is ignored;
 *   c. `-setcookie VALUE` in the node's substituted vm.args, when the caller gives it;
 *   d. `<root>/releases/COOKIE`;
 *   e. `$RELEASE_TMP/COOKIE`: where a node whose release is read-only (an image) made its
 *      random cookie at start, for the commands run beside it (`docker exec ... ping`).
 *
 * Every place looked at is listed in `tried`, for the message when nothing gives a cookie.
 * Like ssh with private keys, a cookie file (the INI file, releases/COOKIE) that other users can
 * read is refused outright, never skipped for the next source; so are an unreadable file and an
 * empty cookie, each naming where. `readIniCookie` is the INI-only variant behind
 * `make read-release-cookie` (Kazoo's way): no fallback, a missing file, section or key is an
 * error naming the path and section tried.
 *
 * Errors are BootError('ECOOKIE') (or 'EINI' from the INI parser), one line with the fix.
 */
import { readFileSync, type Stats, statSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { COOKIE, releasePath } from '../../contract/layout.js';
import { envPrefix } from '../../contract/env-names.js';
import { headWord, parseDirective, vmArgsEntries } from '../../contract/vm-args.js';
import { BootError } from '../errors.js';
import { parseIni, type IniSection } from './ini.js';

export interface CookieResolution {
  readonly cookie: string;
  /** Where it came from, for people: `KAZOO_COOKIE`, `/etc/kazoo/config.ini [ecallmgr]`, ... */
  readonly source: string;
  /** Every place looked at, in order; misses carry why in parentheses, the hit comes last. */
  readonly tried: readonly string[];
}

export interface CookieOptions {
  /** The release name (`kazoo`); gives the `<NAME>_COOKIE`/`<NAME>_CONFIG` variables and /etc dir. */
  readonly relName: string;
  /** The node type (`REL`): the INI section read. */
  readonly nodeType: string;
  /** Absolute release root (for `releases/COOKIE`). */
  readonly root: string;
  /** The node's substituted vm.args, read for `-setcookie`; not looked at when absent. */
  readonly vmArgsFile?: string;
  /** Default: `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** Default: `os.hostname()`. */
  readonly hostname?: string;
  /** Default: `/etc`. */
  readonly etcDir?: string;
}

/** `kazoo` -> `KAZOO`, `my-rel` -> `MY_REL`: the prefix of `<NAME>_COOKIE` and `<NAME>_CONFIG`. */
export const relEnvName = envPrefix;

/** The names a section's `host =` is compared with: the full hostname and its short form. */
export function cookieHostnames(hostname: string): string[] {
  const full = normalizeHost(hostname);
  const short = full.split('.')[0]!;
  return short === full || short === '' ? [full] : [full, short];
}

export function resolveCookie(o: CookieOptions): CookieResolution {
  const env = o.env ?? process.env;
  const envVar = `${relEnvName(o.relName)}_COOKIE`;
  const tried: string[] = [];

  // a. the environment
  const fromEnv = env[envVar];
  if (fromEnv) return { cookie: fromEnv, source: envVar, tried: [...tried, envVar] };
  tried.push(`${envVar} (not set)`);

  // b. the INI file
  const ini = iniFileOf(o);
  const found = lookupIni(o, ini);
  if (found.kind === 'found') return { cookie: found.cookie, source: found.source, tried: [...tried, found.source] };
  tried.push(describeIniMiss(o, ini.file, found));

  // c. vm.args -setcookie
  if (o.vmArgsFile !== undefined) {
    const fromVmArgs = readVmArgsCookie(o.vmArgsFile);
    if (fromVmArgs !== undefined) {
      return { cookie: fromVmArgs, source: 'vm.args -setcookie', tried: [...tried, 'vm.args -setcookie'] };
    }
    tried.push(`vm.args -setcookie (none in ${o.vmArgsFile})`);
  }

  // d. releases/COOKIE
  const cookieFile = releasePath(o.root, COOKIE);
  const text = readCookieFile(cookieFile);
  if (text !== undefined) {
    const cookie = text.trim();
    if (cookie === '') {
      throw new BootError('ECOOKIE', `${cookieFile} is empty; put a cookie in it (and chmod 400 ${cookieFile}) or set ${envVar}`);
    }
    return { cookie, source: 'releases/COOKIE', tried: [...tried, 'releases/COOKIE'] };
  }
  tried.push(`${cookieFile} (missing)`);

  // e. $RELEASE_TMP/COOKIE (a read-only release)
  if (env.RELEASE_TMP) {
    const tmpFile = join(env.RELEASE_TMP, 'COOKIE');
    const tmpText = readCookieFile(tmpFile);
    if (tmpText !== undefined && tmpText.trim() !== '') {
      return { cookie: tmpText.trim(), source: tmpFile, tried: [...tried, tmpFile] };
    }
    tried.push(`${tmpFile} (${tmpText === undefined ? 'missing' : 'empty'})`);
  }

  throw new BootError(
    'ECOOKIE',
    `no cookie for node type ${o.nodeType}; tried: ${tried.join(', ')}; ` +
      `set ${envVar} or add cookie = ... under [${o.nodeType}] in ${ini.file}`,
  );
}

/** The INI file's `[<node type>] cookie`, and nothing else (`make read-release-cookie`). */
export function readIniCookie(o: CookieOptions): CookieResolution {
  const ini = iniFileOf(o);
  const found = lookupIni(o, ini);
  const section = `[${o.nodeType}]`;
  switch (found.kind) {
    case 'found':
      return { cookie: found.cookie, source: found.source, tried: [found.source] };
    case 'no-file':
      throw new BootError(
        'ECOOKIE',
        `no cookie for ${section}: ${ini.file} does not exist; create it with ${section} and cookie = ..., ` +
          `or point ${ini.envVar} at the INI file`,
      );
    case 'no-section':
      if (found.otherHosts.length > 0) {
        throw new BootError(
          'ECOOKIE',
          `no ${section} section for this host in ${ini.file} (found ${section} only for host ${found.otherHosts.join(', ')}; ` +
            `this host is ${found.hosts.join(' or ')}); add one without host = or with host = ${found.hosts[0]}, with cookie = ...`,
        );
      }
      throw new BootError(
        'ECOOKIE',
        `no ${section} section in ${ini.file} (sections: ${found.sections.join(', ') || 'none'}); add one with cookie = ...`,
      );
    case 'no-key':
      throw new BootError(
        'ECOOKIE',
        `no cookie in ${section} at ${ini.file}:${found.section.line}; add cookie = ... under it`,
      );
  }
}

interface IniFile {
  readonly file: string;
  /** `<NAME>_CONFIG` */
  readonly envVar: string;
  /** The file came from `<NAME>_CONFIG` (so it must exist). */
  readonly fromEnv: boolean;
}

type IniLookup =
  | { readonly kind: 'found'; readonly cookie: string; readonly source: string }
  | { readonly kind: 'no-file' }
  | { readonly kind: 'no-section'; readonly sections: string[]; readonly otherHosts: string[]; readonly hosts: string[] }
  | { readonly kind: 'no-key'; readonly section: IniSection };

function iniFileOf(o: CookieOptions): IniFile {
  const env = o.env ?? process.env;
  const envVar = `${relEnvName(o.relName)}_CONFIG`;
  const fromEnv = env[envVar];
  if (fromEnv) return { file: fromEnv, envVar, fromEnv: true };
  return { file: join(o.etcDir ?? '/etc', o.relName, 'config.ini'), envVar, fromEnv: false };
}

function lookupIni(o: CookieOptions, ini: IniFile): IniLookup {
  const text = readCookieFile(ini.file);
  if (text === undefined) {
    if (ini.fromEnv) {
      throw new BootError('ECOOKIE', `${ini.envVar} is set to ${ini.file}, which does not exist; fix the path or unset ${ini.envVar}`);
    }
    return { kind: 'no-file' };
  }
  const sections = parseIni(text, ini.file);
  const hosts = cookieHostnames(o.hostname ?? osHostname());
  const named = sections.filter((s) => s.name === o.nodeType);
  const hostOf = (s: IniSection): string => normalizeHost(s.entries.host ?? '');
  const mine = named.filter((s) => hostOf(s) !== '' && hosts.includes(hostOf(s)));
  const generic = named.filter((s) => hostOf(s) === '');

  // The last section (of the better kind) that has the key wins, as later lines override earlier.
  const pick = [...mine].reverse().find(has) ?? [...generic].reverse().find(has);
  if (pick) {
    const cookie = pick.entries.cookie!;
    const host = hostOf(pick) === '' ? '' : ` (host = ${pick.entries.host})`;
    const source = `${ini.file} [${o.nodeType}]${host}`;
    if (cookie === '') {
      throw new BootError(
        'ECOOKIE',
        `${ini.file}:${pick.keyLines.cookie ?? pick.line}: [${o.nodeType}]${host} has an empty cookie; set cookie = <value> or remove the line`,
      );
    }
    return { kind: 'found', cookie, source };
  }
  const section = mine.at(-1) ?? generic.at(-1);
  if (section) return { kind: 'no-key', section };
  return {
    kind: 'no-section',
    sections: [...new Set(sections.map((s) => s.name))],
    otherHosts: [...new Set(named.map((s) => s.entries.host!))],
    hosts,
  };
}

function has(s: IniSection): boolean {
  return s.entries.cookie !== undefined;
}

/** The `tried` entry for an INI file that gave no cookie. */
function describeIniMiss(o: CookieOptions, file: string, miss: Exclude<IniLookup, { kind: 'found' }>): string {
  switch (miss.kind) {
    case 'no-file':
      return `${file} (missing)`;
    case 'no-section':
      return miss.otherHosts.length > 0
        ? `${file} [${o.nodeType}] (only for host ${miss.otherHosts.join(', ')})`
        : `${file} [${o.nodeType}] (no such section)`;
    case 'no-key':
      return `${file} [${o.nodeType}] (no cookie key)`;
  }
}

/**
 * The text of a file holding a cookie, or undefined when it does not exist. Refuses a file other
 * users can read (mode & 0o004), like ssh with a private key, and names an unreadable one.
 */
function readCookieFile(file: string): string | undefined {
  let stat: Stats;
  try {
    stat = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw unreadable(file, err);
  }
  if (!stat.isFile()) {
    throw new BootError('ECOOKIE', `cannot read the cookie from ${file}: it is not a regular file; replace it with one (mode 600)`);
  }
  if (stat.mode & 0o004) {
    const mode = (stat.mode & 0o7777).toString(8).padStart(4, '0');
    throw new BootError('ECOOKIE', `${file} is readable by other users (mode ${mode}); chmod 600 ${file}`);
  }
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err, stat);
  }
}

function unreadable(file: string, err: unknown, stat?: Stats): BootError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    const owner = stat ? ` (mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${stat.uid})` : '';
    return new BootError(
      'ECOOKIE',
      `cannot read ${file}: permission denied${owner}; run the command as the user the node runs as, or fix the file's owner`,
      { cause: err },
    );
  }
  return new BootError('ECOOKIE', `cannot read ${file}: ${e.message}`, { cause: err });
}

/**
 * The value of `-setcookie VALUE` in a vm.args file (the last one, should there be several), or
 * undefined (none, or no file). Lines are read by the contract's vm.args parser
 * (contract/vm-args.ts): full-line `#` comments, quotes kept as written.
 */
function readVmArgsCookie(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new BootError('ECOOKIE', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let cookie: string | undefined;
  for (const entry of vmArgsEntries(text)) {
    if (headWord(entry.text) !== '-setcookie') continue;
    const d = parseDirective(entry.text);
    if ('problem' in d) throw new BootError('ECOOKIE', `${file}:${entry.line}: ${d.problem}`);
    if (d.kind === 'setcookie') cookie = d.value;
  }
  return cookie;
}

function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * `<NAME>_COOKIE` from the environment, taken out of it (`takeCookieFromEnv`) so the apps of a
 * node never see the cookie in `process.env` (or pass it to their own children), and given back
 * only to noderel's own children that resolve it again: a USR2 successor and the new node a
 * program app's restart starts (`withHeldCookie`). Workers never resolve a cookie: they get none.
 */
let heldCookie: { readonly name: string; readonly value: string } | undefined;

/** Removes `<NAME>_COOKIE` from `env` and `process.env`, keeping its value for `withHeldCookie`. */
export function takeCookieFromEnv(relName: string, env: NodeJS.ProcessEnv = process.env): void {
  const name = `${relEnvName(relName)}_COOKIE`;
  const value = env[name] ?? process.env[name];
  delete env[name];
  delete process.env[name];
  if (value) heldCookie = { name, value };
}

/** `env` plus the cookie `takeCookieFromEnv` took, for a child of noderel's own that needs it. */
export function withHeldCookie(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return heldCookie ? { ...env, [heldCookie.name]: heldCookie.value } : env;
}
