/**
 * vm.args, the one parser of its lines (the launcher's sh loop, `classify_vm_args_line`, follows
 * the same rules; test/unit/contract-conformance.test.ts runs one table through both):
 *
 * - a directive is one line; lines are trimmed; blank lines and lines starting with `#` are
 *   skipped (a `#` elsewhere is a character like any other);
 * - words are separated by whitespace; quotes are characters like any other (kept as written),
 *   but one that opens a word must close on its line ({@link unbalancedQuote}); a directive's
 *   value written whole in one pair of quotes (`-setcookie "s3cret"`, `-env GREETING 'a  b'`)
 *   loses that pair, as the shell of relx's start script would take it ({@link unquoteValue});
 * - `-name NAME` / `-sname NAME`, `-setcookie COOKIE` and `-args_file PATH` take one word;
 *   `-env KEY VALUE`: KEY a variable name, VALUE the rest of the line;
 * - any other line starting with `-` holds Node/V8 flags (split on whitespace at launch).
 *
 * The build reads rel/vm.args with it (config/vm-args.ts: includes, checks, flattening); the
 * runtime reads `-setcookie` from the node's substituted copy with it (node/cookie.ts).
 */

export const VM_ARGS_DIRECTIVES = ['-name', '-sname', '-setcookie', '-env', '-args_file'] as const;

/** One line of vm.args as written, trimmed, with its 1-based line number. */
export interface VmArgsEntry {
  readonly line: number;
  readonly text: string;
}

export type VmArgsDirective =
  | { readonly kind: 'name'; readonly flag: '-name' | '-sname'; readonly value: string }
  | { readonly kind: 'setcookie'; readonly value: string }
  | { readonly kind: 'env'; readonly key: string; readonly value: string }
  | { readonly kind: 'args_file'; readonly path: string }
  | { readonly kind: 'flags'; readonly words: readonly string[] };

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The directive lines of a vm.args text: trimmed, without blank lines and `#` comments. */
export function vmArgsEntries(text: string): VmArgsEntry[] {
  const out: VmArgsEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed !== '' && !trimmed.startsWith('#')) out.push({ line: i + 1, text: trimmed });
  });
  return out;
}

/** The first word of a (trimmed) line. */
export function headWord(text: string): string {
  return text.split(/\s+/, 1)[0]!;
}

/** What one trimmed directive line says, or the problem with it (one line, with the fix). */
export function parseDirective(text: string): VmArgsDirective | { readonly problem: string } {
  const head = headWord(text);
  const args = text.split(/\s+/).slice(1);
  switch (head) {
    case '-name':
    case '-sname':
      return oneWord(head, 'NAME', args, text) ?? { kind: 'name', flag: head, value: unquoteValue(args[0]!) };
    case '-setcookie':
      return oneWord(head, 'COOKIE', args, text) ?? { kind: 'setcookie', value: unquoteValue(args[0]!) };
    case '-args_file':
      return oneWord(head, 'PATH', args, text) ?? { kind: 'args_file', path: unquoteValue(args[0]!) };
    case '-env':
      return parseEnv(text);
    default:
      return text.startsWith('-') ? { kind: 'flags', words: text.split(/\s+/) } : { problem: notAFlag(text) };
  }
}

function oneWord(directive: string, what: string, args: string[], text: string): { problem: string } | undefined {
  if (args.length === 0) return { problem: `${directive} needs an argument; write ${directive} ${what}` };
  if (args.length > 1) return { problem: `${directive} takes one argument, found ${args.length} in "${text}"` };
  return undefined;
}

function parseEnv(text: string): VmArgsDirective | { problem: string } {
  const m = /^-env\s+(\S+)\s+(.+)$/.exec(text);
  if (!m) return { problem: '-env needs an argument; write -env KEY VALUE' };
  const key = m[1]!;
  if (!ENV_KEY.test(key)) {
    return { problem: `-env key "${key}" is not a valid variable name; use letters, digits and _, not starting with a digit` };
  }
  return { kind: 'env', key, value: unquoteValue(m[2]!) };
}

/**
 * A directive's value written whole in one pair of matching quotes, `"..."` or `'...'` with no
 * other such quote inside, without that pair (nothing inside is interpreted); any other value
 * (`"a" b "c"`) as written. The launcher's
 * `unquote_value` does the same.
 */
export function unquoteValue(value: string): string {
  const q = value[0];
  if (value.length < 2 || (q !== '"' && q !== "'") || !value.endsWith(q)) return value;
  const inner = value.slice(1, -1);
  return inner.includes(q) ? value : inner;
}

function notAFlag(text: string): string {
  const base = `expected a flag or directive, found "${text}"`;
  if (text.startsWith('+')) return `${base}; Erlang emulator flags (+K, +P, ...) have no Node equivalent, remove it`;
  return `${base}; write Node flags as --flag[=value], or use ${VM_ARGS_DIRECTIVES.join(', ')}`;
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
