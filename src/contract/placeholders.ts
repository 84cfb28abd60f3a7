/**
 * `${VAR}` and `${VAR:-default}`: the one scanner and the one substitution of the contract
 * (the launcher has its own in sh, `subst_vars`, checked against this one by
 * test/unit/contract-conformance.test.ts). The build checks placeholders with it (vm.args,
 * sys.config.src) and finds which ones to type; the runtime substitutes with it (sys.config
 * values, a program's args and cwd). `default` applies when VAR is unset or empty, as in sh; a
 * `$` not followed by `{` is literal; a malformed `${...}` is left as written.
 */

/** A `${...}` found in a text: well-formed (`name` set) or not (`error` set). */
export interface Placeholder {
  /** Its offset in the text and its text as written. */
  readonly start: number;
  readonly raw: string;
  readonly name?: string;
  readonly fallback?: string;
  readonly error?: string;
}

const INNER = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([^]*))?$/;

/** Every `${` in `text`, in order. */
export function scanPlaceholders(text: string): Placeholder[] {
  const found: Placeholder[] = [];
  let from = 0;
  for (let start = text.indexOf('${', from); start !== -1; start = text.indexOf('${', from)) {
    const end = text.indexOf('}', start + 2);
    if (end === -1) {
      found.push({ start, raw: text.slice(start), error: 'is not closed with }' });
      break;
    }
    found.push(parsePlaceholder(start, text.slice(start, end + 1), text.slice(start + 2, end)));
    from = end + 1;
  }
  return found;
}

function parsePlaceholder(start: number, raw: string, inner: string): Placeholder {
  const m = INNER.exec(inner);
  if (!m) return { start, raw, error: 'is malformed' };
  const fallback = m[2];
  if (fallback !== undefined && fallback.includes('${')) return { start, raw, error: 'nests a placeholder, which is not supported' };
  return { start, raw, name: m[1]!, fallback };
}

/**
 * The problems with the `${...}` placeholders in `text` (empty when all are well-formed), e.g.
 * `placeholder "${1A}" is malformed; write ${NAME} or ${NAME:-default}, ...`.
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
 * `text` with each well-formed placeholder replaced by its variable from `env` (its default when
 * the variable is unset or empty). A variable unset without a default becomes `''` and is named
 * to `onUnset`, so the caller can report every one in one error.
 */
export function substitute(text: string, env: NodeJS.ProcessEnv, onUnset: (name: string) => void): string {
  let out = '';
  let from = 0;
  for (const p of scanPlaceholders(text)) {
    if (p.name === undefined) continue;
    out += text.slice(from, p.start) + valueOf(p.name, p.fallback, env, onUnset);
    from = p.start + p.raw.length;
  }
  return out + text.slice(from);
}

function valueOf(name: string, fallback: string | undefined, env: NodeJS.ProcessEnv, onUnset: (name: string) => void): string {
  const value = env[name];
  if (fallback !== undefined) return value === undefined || value === '' ? fallback : value;
  if (value === undefined) {
    onUnset(name);
    return '';
  }
  return value;
}
