/**
 * `rel/vm.args` (SPEC §2): one directive per line, full-line `#` comments. Node/V8 flags plus
 * the launcher directives `-name`/`-sname`, `-setcookie`, `-env KEY VALUE` and `-args_file PATH`
 * (an include, inlined at build time). `${VAR}` / `${VAR:-default}` are kept verbatim here and
 * substituted at launch into a per-node file, never in place.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readConfigFile } from './read-file.js';
import { Problems } from '../errors.js';
import { displayPath } from '../reporter.js';

/** One directive as written, after comments and blank lines are dropped. */
export interface VmArgsLine {
  /** Absolute path of the file the directive was read from. */
  file: string;
  /** 1-based line number in that file. */
  line: number;
  /** The directive, trimmed; inner whitespace kept as written. */
  text: string;
}

/** A loaded vm.args with its includes inlined. */
export interface VmArgs {
  /** Absolute path of the top-level vm.args. */
  file: string;
  /** Every directive in order, includes inlined (the `-args_file` lines themselves are dropped). */
  lines: VmArgsLine[];
  /**
   * The Node/V8 flag lines (every line starting with `-` that is not a launcher directive).
   * One directive per line; the launcher splits a line on whitespace, so `--stack-size 2000`
   * and `--max-old-space-size=512` both work.
   */
  nodeFlags: VmArgsLine[];
  /** From `-name NAME` or `-sname NAME`. */
  name?: string;
  /** `-setcookie C`: discouraged (the cookie belongs in releases/COOKIE); callers warn. */
  setcookie?: VmArgsLine;
  /** `-env KEY VALUE` pairs; the value is the rest of the line. */
  env: { key: string; value: string; at: VmArgsLine }[];
}

const CODE = 'EVMARGS';
const DIRECTIVES = ['-name', '-sname', '-setcookie', '-env', '-args_file'] as const;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A frame of the include chain: the file being read and, once it includes another, the line. */
interface Frame {
  file: string;
  real: string;
  line: number;
}

/**
 * Read a vm.args, inline its `-args_file` includes (paths relative to the including file's
 * directory; absolute paths allowed) and sort the directives. Every problem in every file is
 * reported in one `NoderelError` (code `EVMARGS`): a missing file, a missing include, a circular
 * include (naming the chain), a directive missing its argument, a line that is not a flag.
 */
export function loadVmArgs(file: string): VmArgs {
  const abs = path.resolve(file);
  const problems = new Problems();
  const text = readConfigFile(abs, CODE, 'vm.args');
  const lines: VmArgsLine[] = [];
  readInto(abs, text, [], lines, problems);
  const v = classify(abs, lines, problems);
  problems.throwIfAny(CODE, `${displayPath(abs)}: invalid vm.args`);
  return v;
}

/** Parse one file's text, appending its directives and recursing into includes. */
function readInto(abs: string, text: string, chain: Frame[], out: VmArgsLine[], problems: Problems): void {
  const frame: Frame = { file: abs, real: realPath(abs), line: 0 };
  const stack = [...chain, frame];
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const at: VmArgsLine = { file: abs, line: i + 1, text: trimmed };
    if (head(trimmed) === '-args_file') {
      frame.line = at.line;
      include(at, stack, out, problems);
    } else {
      out.push(at);
    }
  });
}

/** Handle `-args_file PATH`: check it, detect cycles, read and inline the target. */
function include(at: VmArgsLine, stack: Frame[], out: VmArgsLine[], problems: Problems): void {
  const loc = where(at);
  const args = tail(at.text);
  if (args.length !== 1) {
    problems.add(loc, args.length === 0 ? needs('-args_file', 'PATH') : oneArg('-args_file', args.length, at.text));
    return;
  }
  const rel = args[0]!;
  if (rel.includes('${')) {
    problems.add(loc, `-args_file "${rel}" uses \${...}, but includes are inlined at build time; write a literal path`);
    return;
  }
  const target = path.resolve(path.dirname(at.file), rel);
  const text = readInclude(target);
  if (text === undefined) {
    problems.add(loc, `-args_file "${rel}" not found (looked for ${displayPath(target)}); fix the path, which is relative to the including file's directory`);
    return;
  }
  const real = realPath(target);
  if (stack.some((f) => f.real === real)) {
    const chain = [...stack.map((f) => `${displayPath(f.file)}:${f.line}`), displayPath(target)].join(' -> ');
    problems.add('', `circular -args_file include: ${chain}; remove one of these -args_file lines`);
    return;
  }
  readInto(target, text, stack, out, problems);
}

function readInclude(abs: string): string | undefined {
  try {
    return fs.readFileSync(abs, 'utf8');
  } catch {
    return undefined;
  }
}

function realPath(abs: string): string {
  try {
    return fs.realpathSync(abs);
  } catch {
    return abs;
  }
}

/** Sort the inlined directives into name, cookie, env and Node flags; check each one. */
function classify(file: string, lines: VmArgsLine[], problems: Problems): VmArgs {
  const v: VmArgs = { file, lines, nodeFlags: [], env: [] };
  let nameAt: VmArgsLine | undefined;
  for (const at of lines) {
    for (const p of placeholderProblems(at.text)) problems.add(where(at), p);
    const h = head(at.text);
    if (h === '-name' || h === '-sname') {
      nameAt = takeName(v, at, nameAt, problems);
    } else if (h === '-setcookie') {
      takeCookie(v, at, problems);
    } else if (h === '-env') {
      takeEnv(v, at, problems);
    } else if (at.text.startsWith('-')) {
      v.nodeFlags.push(at);
    } else {
      problems.add(where(at), notAFlag(at.text));
    }
  }
  return v;
}

function takeName(v: VmArgs, at: VmArgsLine, prev: VmArgsLine | undefined, problems: Problems): VmArgsLine | undefined {
  const h = head(at.text);
  const args = tail(at.text);
  if (args.length !== 1) {
    problems.add(where(at), args.length === 0 ? needs(h, 'NAME') : oneArg(h, args.length, at.text));
    return prev;
  }
  if (prev) {
    problems.add(where(at), `${h} given twice (first at ${where(prev)}); keep one`);
    return prev;
  }
  v.name = args[0];
  return at;
}

function takeCookie(v: VmArgs, at: VmArgsLine, problems: Problems): void {
  const args = tail(at.text);
  if (args.length !== 1) {
    problems.add(where(at), args.length === 0 ? needs('-setcookie', 'COOKIE') : oneArg('-setcookie', args.length, at.text));
  } else if (v.setcookie) {
    problems.add(where(at), `-setcookie given twice (first at ${where(v.setcookie)}); keep one`);
  } else {
    v.setcookie = at;
  }
}

function takeEnv(v: VmArgs, at: VmArgsLine, problems: Problems): void {
  const m = /^-env\s+(\S+)\s+(.+)$/.exec(at.text);
  if (!m) {
    problems.add(where(at), needs('-env', 'KEY VALUE'));
    return;
  }
  const key = m[1]!;
  if (!ENV_KEY.test(key)) {
    problems.add(where(at), `-env key "${key}" is not a valid variable name; use letters, digits and _, not starting with a digit`);
    return;
  }
  v.env.push({ key, value: m[2]!, at });
}

function notAFlag(text: string): string {
  const base = `expected a flag or directive, found "${text}"`;
  if (text.startsWith('+')) return `${base}; Erlang emulator flags (+K, +P, ...) have no Node equivalent, remove it`;
  return `${base}; write Node flags as --flag[=value], or use ${DIRECTIVES.join(', ')}`;
}

function needs(directive: string, args: string): string {
  return `${directive} needs an argument; write ${directive} ${args}`;
}

function oneArg(directive: string, found: number, text: string): string {
  return `${directive} takes one argument, found ${found} in "${text}"`;
}

function head(text: string): string {
  return text.split(/\s+/, 1)[0]!;
}

function tail(text: string): string[] {
  return text.split(/\s+/).slice(1);
}

function where(at: VmArgsLine): string {
  return `${displayPath(at.file)}:${at.line}`;
}

/**
 * The text written to `releases/<vsn>/vm.args`: one directive per line, a `# from <file>`
 * comment wherever the source file changes (the start of the file and of each include, and
 * where an including file resumes). `${VAR}` is kept verbatim for launch time.
 * `display` turns the stored absolute paths into the ones shown (default: relative to cwd).
 */
export function flattenVmArgs(v: VmArgs, display: (abs: string) => string = (abs) => displayPath(abs)): string {
  const out: string[] = [];
  let current: string | undefined;
  for (const at of v.lines) {
    if (at.file !== current) {
      out.push(`# from ${display(at.file)}`);
      current = at.file;
    }
    out.push(at.text);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/**
 * Check every flag of the Node flag lines against the pinned runtime. `isKnown` receives the
 * flag name as written, before any `=` (`--max-old-space-size`, `-r`); a line's later
 * whitespace-separated words are checked too when they look like flags (`--a --b`), but not
 * values (`--stack-size 2000`). Returns one problem per unknown flag, e.g.
 * `rel/vm.args:4: unknown Node flag --frobnicate for the pinned runtime (node 22.23.3); see ...`.
 */
export function checkVmArgFlags(
  v: VmArgs,
  isKnown: (flag: string) => boolean,
  display: (abs: string) => string,
  runtime?: { nodeVersion?: string },
): string[] {
  const pinned = runtime?.nodeVersion ? `the pinned runtime (node ${runtime.nodeVersion})` : 'the pinned runtime';
  const out: string[] = [];
  for (const at of v.nodeFlags) {
    for (const flag of flagNames(at.text)) {
      if (isKnown(flag)) continue;
      out.push(`${display(at.file)}:${at.line}: unknown Node flag ${flag} for ${pinned}; see \`node --help\` / \`node --v8-options\``);
    }
  }
  return out;
}

/** The flag names on a flag line: the first word, and later words that look like flags. */
function flagNames(text: string): string[] {
  const words = text.split(/\s+/);
  const flags = words.filter((w, i) => i === 0 || /^--?[A-Za-z]/.test(w));
  return flags.map((w) => w.split('=', 1)[0]!);
}

/** A `${...}` found in a text: well-formed (`name` set) or not (`error` set). */
interface Placeholder {
  raw: string;
  name?: string;
  fallback?: string;
  error?: string;
}

const INNER = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([^]*))?$/;

/** Every `${` in `text`, in order; a `$` not followed by `{` is literal. */
function scanPlaceholders(text: string): Placeholder[] {
  const found: Placeholder[] = [];
  let from = 0;
  for (let start = text.indexOf('${', from); start !== -1; start = text.indexOf('${', from)) {
    const end = text.indexOf('}', start + 2);
    if (end === -1) {
      found.push({ raw: text.slice(start), error: 'is not closed with }' });
      break;
    }
    const raw = text.slice(start, end + 1);
    found.push(parsePlaceholder(raw, text.slice(start + 2, end)));
    from = end + 1;
  }
  return found;
}

function parsePlaceholder(raw: string, inner: string): Placeholder {
  const m = INNER.exec(inner);
  if (!m) return { raw, error: 'is malformed' };
  const fallback = m[2];
  if (fallback !== undefined && fallback.includes('${')) return { raw, error: 'nests a placeholder, which is not supported' };
  return { raw, name: m[1]!, fallback };
}

/**
 * The problems with the `${...}` placeholders in `text` (empty when all are well-formed), e.g.
 * `malformed placeholder "${1A}"; write ${NAME} or ${NAME:-default}`.
 */
export function placeholderProblems(text: string): string[] {
  return scanPlaceholders(text)
    .filter((p) => p.error !== undefined)
    .map((p) => `placeholder "${p.raw}" ${p.error}; write \${NAME} or \${NAME:-default}, NAME being letters, digits and _`);
}

/** The well-formed `${VAR}` and `${VAR:-default}` placeholders in `text`, in order. */
export function varsIn(text: string): { name: string; hasDefault: boolean }[] {
  return scanPlaceholders(text)
    .filter((p) => p.name !== undefined)
    .map((p) => ({ name: p.name!, hasDefault: p.fallback !== undefined }));
}

/**
 * Substitute `${VAR}` and `${VAR:-default}` (the default applies when VAR is unset or empty,
 * as in sh). Throws a `NoderelError` (code `EVAR`) naming `where` for every unset variable
 * without a default (`<where>: ${HOME_DIR} is not set and has no default; set it or write
 * ${HOME_DIR:-value}`) and every malformed placeholder.
 */
export function substituteVars(text: string, env: Record<string, string | undefined>, where: string): string {
  const problems = new Problems();
  for (const p of placeholderProblems(text)) problems.add(where, p);
  let out = '';
  let from = 0;
  for (const p of scanPlaceholders(text)) {
    const start = text.indexOf(p.raw, from);
    out += text.slice(from, start) + (p.name === undefined ? p.raw : valueOf(p, env, where, problems));
    from = start + p.raw.length;
  }
  problems.throwIfAny('EVAR', `${where}: cannot substitute variables`);
  return out + text.slice(from);
}

function valueOf(p: Placeholder, env: Record<string, string | undefined>, where: string, problems: Problems): string {
  const value = env[p.name!];
  if (p.fallback !== undefined) return value === undefined || value === '' ? p.fallback : value;
  if (value !== undefined) return value;
  problems.add(where, `\${${p.name}} is not set and has no default; set it or write \${${p.name}:-value}`);
  return '';
}
