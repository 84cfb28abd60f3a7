/**
 * `rel/vm.args`: one directive per line, full-line `#` comments. Node/V8 flags plus
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
   * The launcher splits a line on whitespace, so one line may hold several flags, and Node's own
   * options may take their value as the next word (`-r ./x.js`); V8's need `=` (`--stack-size=2000`).
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
    const quote = unbalancedQuote(at.text);
    if (quote) problems.add(where(at), quote);
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

/**
 * A quote that opens a word (or a value after `=`) and is not closed on the same line, e.g.
 * `-env FOO "bar baz`: a directive is one line, so the rest of the file cannot close it.
 * A quote inside a word (`it's`) is a character like any other.
 */
export function unbalancedQuote(text: string): string | undefined {
  let wordStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      wordStart = true;
      continue;
    }
    if ((c === '"' || c === "'") && (wordStart || text[i - 1] === '=')) {
      const close = text.indexOf(c, i + 1);
      if (close === -1) {
        return `unbalanced ${c} at column ${i + 1} in "${text}"; close the quote on this line (a directive is one line) or remove it`;
      }
      i = close;
    }
    wordStart = false;
  }
  return undefined;
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
 * The type of a runtime option, as {@link checkVmArgFlags} checks its value: V8's (`v8:int`,
 * `v8:size_t`, ... from `node --v8-options`; V8 options take a value only as `--flag=value`, and
 * boolean ones none) or Node's own (`node:int`, `node:string`, ...: `--flag=value` or
 * `--flag value`). `*:other` is not checked.
 */
export type FlagType =
  | 'v8:bool' | 'v8:int' | 'v8:uint' | 'v8:uint64' | 'v8:size_t' | 'v8:float' | 'v8:string' | 'v8:other'
  | 'node:bool' | 'node:int' | 'node:uint' | 'node:string' | 'node:other';

/** What a value of each checked type looks like, and how to say it. */
const VALUE_FORMS: Partial<Record<FlagType, { re: RegExp; what: string; slot: string }>> = {
  'v8:int': { re: /^[-+]?\d+$/, what: 'a whole number', slot: '<whole number>' },
  'v8:uint': { re: /^\+?\d+$/, what: 'a whole number >= 0', slot: '<whole number>' },
  'v8:uint64': { re: /^\+?\d+$/, what: 'a whole number >= 0', slot: '<whole number>' },
  'v8:size_t': { re: /^\+?\d+$/, what: 'a whole number >= 0', slot: '<whole number>' },
  'v8:float': { re: /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/, what: 'a number', slot: '<number>' },
  'node:int': { re: /^-?\d+$/, what: 'a whole number', slot: '<whole number>' },
  'node:uint': { re: /^\d+$/, what: 'a whole number >= 0', slot: '<whole number>' },
};

/** `--max_old_space_size` is `--max-old-space-size` to Node and V8. */
function canonical(name: string): string {
  return name.startsWith('--') ? `--${name.slice(2).replace(/_/g, '-')}` : name;
}

/**
 * Check every flag of the Node flag lines against the pinned runtime. `isKnown` receives the
 * flag name as written, before any `=` (`--max-old-space-size`, `-r`); a line's later
 * whitespace-separated words are checked too when they look like flags (`--a --b`). Returns one
 * problem per unknown flag, e.g. `rel/vm.args:4: unknown Node flag --frobnicate for the pinned
 * runtime (node 22.23.3); see ...`.
 *
 * With `typeOf` (the runtime's option types, by canonical name; `name=` for an alias that
 * applies with a value only), the values are checked too, as the runtime would refuse them at
 * start (V8 exits with code 9) or, worse, take them silently (Node reads `abc` as 0):
 * `--max-old-space-size=abc`, `--stack-size 2000` (V8 options need `=`), `--expose-gc=1`
 * (a boolean takes no value), `--no-max-old-space-size`, `-r` with nothing after it, and a word
 * no flag takes, which Node would run as the program. Values holding `${...}` are substituted
 * at launch and not checked.
 */
export function checkVmArgFlags(
  v: VmArgs,
  isKnown: (flag: string) => boolean,
  display: (abs: string) => string,
  runtime?: { nodeVersion?: string; typeOf?: (name: string) => FlagType | undefined },
): string[] {
  const pinned = runtime?.nodeVersion ? `the pinned runtime (node ${runtime.nodeVersion})` : 'the pinned runtime';
  const out: string[] = [];
  for (const at of v.nodeFlags) {
    const loc = `${display(at.file)}:${at.line}`;
    const words = at.text.split(/\s+/);
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      if (i > 0 && !/^--?[A-Za-z]/.test(word)) {
        // A word no flag took: Node would run it as the program (checked when the types are known).
        if (runtime?.typeOf && !word.includes('${')) {
          out.push(`${loc}: "${word}" in "${at.text}" is not a flag and no flag before it takes a value; Node would run it as the program: remove it, or join it to its flag with =`);
        }
        continue;
      }
      const flag = word.split('=', 1)[0]!;
      if (!isKnown(flag)) {
        out.push(`${loc}: unknown Node flag ${flag} for ${pinned}; see \`node --help\` / \`node --v8-options\``);
        // Whether it takes the next word is unknown: leave that word alone.
        if (i + 1 < words.length && !/^--?[A-Za-z]/.test(words[i + 1]!)) i++;
        continue;
      }
      if (!runtime?.typeOf) continue;
      const next = words[i + 1];
      const problem = checkFlagValue(word, next, runtime.typeOf);
      if (problem.message) out.push(`${loc}: ${problem.message}`);
      if (problem.tookNext) i++;
    }
  }
  return out;
}

/** One flag's value against its type; `tookNext` when the next word is (or was meant as) its value. */
function checkFlagValue(
  word: string,
  next: string | undefined,
  typeOf: (name: string) => FlagType | undefined,
): { message?: string; tookNext: boolean } {
  const eq = word.indexOf('=');
  const name = canonical(eq < 0 ? word : word.slice(0, eq));
  const value = eq < 0 ? undefined : word.slice(eq + 1);
  const nextIsValue = next !== undefined && !/^--?[A-Za-z]/.test(next);
  let type = (value !== undefined ? typeOf(`${name}=`) : undefined) ?? typeOf(name);
  if (type === undefined && name.startsWith('--no-')) {
    const base = `--${name.slice(5)}`;
    const baseType = typeOf(base);
    if (baseType === undefined || baseType === 'v8:other' || baseType === 'node:other') return { tookNext: nextIsValue };
    if (baseType !== 'v8:bool' && baseType !== 'node:bool') {
      return { message: `${word}: ${base} takes a value, so it has no --no- form; write ${base}=<value> or remove the flag`, tookNext: nextIsValue };
    }
    type = baseType;
  }
  // Not known to refuse a separate value: the next word may be its value, and is not checked.
  if (type === undefined || type === 'v8:other' || type === 'node:other') return { tookNext: nextIsValue };
  if (type === 'node:bool') return { tookNext: false };
  if (type === 'v8:bool') {
    if (value === undefined) return { tookNext: false };
    const plain = name.startsWith('--no-') ? `--${name.slice(5)}` : name;
    return { message: `${word}: ${plain} is a boolean V8 flag and takes no value (node would exit with code 9); write ${plain} or --no-${plain.slice(2)}`, tookNext: false };
  }
  const form = VALUE_FORMS[type];
  const slot = form?.slot ?? '<value>';
  if (type.startsWith('v8:')) {
    if (value === undefined) {
      const example = nextIsValue ? `${name}=${next}` : `${name}=${slot}`;
      return {
        message: `${nextIsValue ? `${word} ${next}` : word}: V8 flags take their value after = (node would exit with code 9); write ${example}`,
        tookNext: nextIsValue,
      };
    }
    return { message: badValue(word, name, value, type, form), tookNext: false };
  }
  // Node's own option: `--flag=value` or `--flag value`; a value starting with - is refused.
  if (value !== undefined) {
    if (value === '') return { message: `${word}: ${name} needs a value (node would refuse to start); write ${name}=${slot}`, tookNext: false };
    return { message: badValue(word, name, value, type, form), tookNext: false };
  }
  if (next === undefined || next.startsWith('-')) {
    return { message: `${word}: ${name} needs a value on its line (node would take the next argument as it, or refuse to start); write ${name}=${slot}`, tookNext: false };
  }
  return { message: badValue(`${word} ${next}`, name, next, type, form), tookNext: true };
}

function badValue(written: string, name: string, value: string, type: FlagType, form: (typeof VALUE_FORMS)[FlagType]): string | undefined {
  if (!form || value.includes('${') || form.re.test(value)) return undefined;
  const [by, kind] = type.split(':') as [string, string];
  const consequence = by === 'v8' ? 'node would exit with code 9 at start' : 'node would misread it without a word (abc as 0)';
  return `${written}: the value of ${name} must be ${form.what} (${by === 'v8' ? 'V8' : 'Node'} type ${kind}), not "${value}": ${consequence}; write ${name}=${form.slot}`;
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
