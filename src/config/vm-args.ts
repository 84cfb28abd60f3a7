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
import { headWord, parseDirective, unbalancedQuote, vmArgsEntries } from '../contract/vm-args.js';
import { placeholderProblems } from '../contract/placeholders.js';

export { unbalancedQuote } from '../contract/vm-args.js';
export { placeholderProblems, varsIn } from '../contract/placeholders.js';

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

/** Parse one file's text (contract/vm-args.ts), appending its directives and recursing into includes. */
function readInto(abs: string, text: string, chain: Frame[], out: VmArgsLine[], problems: Problems): void {
  const frame: Frame = { file: abs, real: realPath(abs), line: 0 };
  const stack = [...chain, frame];
  for (const { line, text: trimmed } of vmArgsEntries(text)) {
    const at: VmArgsLine = { file: abs, line, text: trimmed };
    if (headWord(trimmed) === '-args_file') {
      frame.line = at.line;
      include(at, stack, out, problems);
    } else {
      out.push(at);
    }
  }
}

/** Handle `-args_file PATH`: check it, detect cycles, read and inline the target. */
function include(at: VmArgsLine, stack: Frame[], out: VmArgsLine[], problems: Problems): void {
  const loc = where(at);
  const d = parseDirective(at.text);
  if ('problem' in d || d.kind !== 'args_file') {
    problems.add(loc, 'problem' in d ? d.problem : `expected -args_file PATH, found "${at.text}"`);
    return;
  }
  const rel = d.path;
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

/** Sort the inlined directives (parsed by contract/vm-args.ts) into name, cookie, env and Node flags. */
function classify(file: string, lines: VmArgsLine[], problems: Problems): VmArgs {
  const v: VmArgs = { file, lines, nodeFlags: [], env: [] };
  let nameAt: VmArgsLine | undefined;
  for (const at of lines) {
    for (const p of placeholderProblems(at.text)) problems.add(where(at), p);
    const quote = unbalancedQuote(at.text);
    if (quote) problems.add(where(at), quote);
    const d = parseDirective(at.text);
    if ('problem' in d) {
      problems.add(where(at), d.problem);
    } else if (d.kind === 'name') {
      nameAt = takeName(v, at, d.flag, d.value, nameAt, problems);
    } else if (d.kind === 'setcookie') {
      if (v.setcookie) problems.add(where(at), `-setcookie given twice (first at ${where(v.setcookie)}); keep one`);
      else v.setcookie = at;
    } else if (d.kind === 'env') {
      v.env.push({ key: d.key, value: d.value, at });
    } else if (d.kind === 'flags') {
      v.nodeFlags.push(at);
    }
  }
  return v;
}

function takeName(v: VmArgs, at: VmArgsLine, flag: string, name: string, prev: VmArgsLine | undefined, problems: Problems): VmArgsLine | undefined {
  if (prev) {
    problems.add(where(at), `${flag} given twice (first at ${where(prev)}); keep one`);
    return prev;
  }
  v.name = name;
  return at;
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
