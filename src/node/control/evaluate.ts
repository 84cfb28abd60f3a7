/**
 * JavaScript evaluated inside a node for `eval` and every REPL (`console`, `attach`,
 * `remote_console`; with workers the master sends each input to a worker, which evaluates it
 * here). Node's REPL semantics: statements, the value of the last one, top-level `let`, `const`,
 * `class`, `var` and `function` bindings that persist for the session, `require` (from the
 * node's working directory), `await`, and `node`, `apps`, `config` and `lifecycle` in scope.
 *
 * Each session (one `eval`, one REPL) is a vm context of its own: its declarations are its own,
 * while the node's globals (`process`, `Buffer`, timers, what the apps put on `globalThis`)
 * are the node's, and `globalThis` is the node's global object, so `globalThis.x = 1` is seen by
 * the apps and every other session. Literals made in a session belong to its context (as in a
 * REPL started with `useGlobal: false`): `[] instanceof Array` is true inside it, not in app code.
 *
 * Every input runs with a time limit: synchronous code is interrupted by V8 (vm's `timeout`), so
 * `while (true) {}` cannot freeze the node; a promise that has not settled in time is answered
 * with the same error (what it started runs on). Not covered: an endless synchronous loop that
 * starts after an `await` (it runs outside the evaluation, as a microtask).
 *
 * Top-level `await` without a parser: code that V8 refuses as a script for its `await` runs in an
 * async function; `let`/`const`/`var NAME = ...` at its top level become assignments that persist
 * in the session, and its last statement, when it is an expression, is the value. Destructuring
 * declarations and functions declared there stay local to that input.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { inspect, types } from 'node:util';
import { type Context, createContext, runInContext, runInNewContext, Script } from 'node:vm';
import type { Evaluation, NodeHandle } from '../supervision/node-types.js';

/** The time limit of an `eval` and of each REPL input when none is given (`eval --timeout S`). */
export const DEFAULT_EVAL_TIMEOUT_MS = 60_000;

export type { Evaluation } from '../supervision/node-types.js';

/** The names a fresh context has of its own (Object, Array, JSON, ...): those stay the session's. */
let contextNames: Set<string> | undefined;

/** One evaluation scope: a REPL, or one `eval`. */
export class EvalSession {
  private readonly sandbox: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  private readonly context: Context;
  private readonly linked = new Set<string>();

  constructor(handle: NodeHandle) {
    contextNames ??= new Set((runInNewContext('Object.getOwnPropertyNames(globalThis)') as string[]).filter((n) => n !== 'console' && n !== 'globalThis'));
    const scope: Record<string, () => unknown> = {
      node: () => handle.info,
      apps: () => Object.fromEntries(handle.apps),
      config: () => handle.config,
      lifecycle: () => handle.lifecycle,
    };
    for (const [name, get] of Object.entries(scope)) Object.defineProperty(this.sandbox, name, { get, configurable: true });
    const req = createRequire(join(process.cwd(), '[eval]'));
    Object.defineProperty(this.sandbox, 'require', { value: req, writable: true, configurable: true });
    this.link();
    this.context = createContext(this.sandbox, { name: 'noderel eval' });
  }

  /** The node's globals, read and written through: linked again before each input (apps add some). */
  private link(): void {
    for (const name of Object.getOwnPropertyNames(globalThis)) {
      if (this.linked.has(name) || contextNames!.has(name) || Object.prototype.hasOwnProperty.call(this.sandbox, name)) continue;
      this.linked.add(name);
      Object.defineProperty(this.sandbox, name, {
        get: () => (globalThis as Record<string, unknown>)[name],
        set: (v: unknown) => void ((globalThis as Record<string, unknown>)[name] = v),
        configurable: true,
      });
    }
  }

  /** Runs `code` in this session; resolves with its value, rejects with what it threw (or a timeout). */
  async run(code: string, timeoutMs: number = DEFAULT_EVAL_TIMEOUT_MS): Promise<unknown> {
    this.link();
    const limit = Math.max(1, Math.round(timeoutMs));
    let value: unknown;
    try {
      value = compile(code, this.context).runInContext(this.context, { timeout: limit, displayErrors: false });
    } catch (err) {
      throw ownRealm(err, limit);
    }
    if (!(value instanceof Promise) && !types.isPromise(value)) return value;
    // A promise: the value of an async input (await), or of the last expression. Answered in time.
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        value,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(timedOut(limit)), limit);
        }),
      ]);
    } catch (err) {
      throw ownRealm(err, limit);
    } finally {
      clearTimeout(timer);
    }
  }
}

function compile(code: string, context: Context): Script {
  // `{ a: 1 }` is an object, as in Node's REPL, when it parses as one.
  if (/^\s*\{/.test(code) && /\}\s*;?\s*$/.test(code)) {
    try {
      return new Script(`(${code.replace(/;\s*$/, '')}\n)`, { filename: 'eval' });
    } catch {
      // a block
    }
  }
  try {
    return new Script(code, { filename: 'eval' });
  } catch (err) {
    if (!(err instanceof SyntaxError) || !/await is only valid|Unexpected reserved word|Unexpected identifier/.test(err.message) || !/\bawait\b/.test(code)) throw err;
    let script: Script;
    const { source, names } = asyncBody(code);
    try {
      script = new Script(source, { filename: 'eval' });
    } catch {
      throw err; // the rewrite did not help: the original error is the one to show
    }
    for (const name of names) {
      try {
        runInContext(`var ${name};`, context);
      } catch {
        // already a let/const of this session: the assignment goes to it
      }
    }
    return script;
  }
}

const STATEMENT_KEYWORDS = /^(if|for|while|do|switch|try|return|throw|break|continue|function|async\s+function|class|let|const|var|import|export|label:)\b/;

/** `code` with top-level await as an async function's body whose value is its last expression. */
export function asyncBody(code: string): { source: string; names: string[] } {
  const statements = splitTopLevel(code);
  const names: string[] = [];
  let last = -1;
  const parts = statements.map((s, i) => {
    const m = /^(\s*)(?:const|let|var)\s+([A-Za-z_$][\w$]*)(\s*=)/.exec(s.text);
    if (m) {
      names.push(m[2]!);
      return `${m[1]}${m[2]}${m[3]}${s.text.slice(m[0].length)}${s.end}`;
    }
    if (s.text.trim() !== '' && !/^\s*[{}]/.test(s.text) && !STATEMENT_KEYWORDS.test(s.text.trim())) last = i;
    return s.text + s.end;
  });
  const lastNonEmpty = statements.map((s) => s.text.trim() !== '').lastIndexOf(true);
  if (last === lastNonEmpty && last >= 0) {
    const s = statements[last]!;
    parts[last] = `return (${s.text.trim()}\n)${s.end}`;
  }
  return { source: `(async () => {\n${parts.join('')}\n})()`, names };
}

/**
 * The top-level statements of `code`, split at `;` and at line ends outside brackets, strings,
 * template literals and comments (a line that goes on, as `.then(...)` or `+ x`, is not split).
 */
function splitTopLevel(code: string): { text: string; end: string }[] {
  const out: { text: string; end: string }[] = [];
  let depth = 0;
  let start = 0;
  let i = 0;
  const push = (end: number, sep: string) => {
    out.push({ text: code.slice(start, end), end: sep });
    start = end + sep.length;
  };
  while (i < code.length) {
    const c = code[i]!;
    if (c === '/' && code[i + 1] === '/') {
      const nl = code.indexOf('\n', i);
      i = nl < 0 ? code.length : nl;
      continue;
    }
    if (c === '/' && code[i + 1] === '*') {
      const close = code.indexOf('*/', i + 2);
      i = close < 0 ? code.length : close + 2;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      i++;
      let nested = 0;
      while (i < code.length && (code[i] !== c || nested > 0)) {
        if (code[i] === '\\') i++;
        else if (c === '`' && code[i] === '$' && code[i + 1] === '{') nested++;
        else if (c === '`' && code[i] === '}' && nested > 0) nested--;
        i++;
      }
      i++;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth = Math.max(0, depth - 1);
    else if (depth === 0 && c === ';') {
      push(i, ';');
    } else if (depth === 0 && c === '\n') {
      const before = code.slice(start, i).trimEnd();
      const after = code.slice(i + 1).trimStart();
      const goesOn = /[-+*/%&|^!~<>=?:,.(]$/.test(before) || /^([-+*/%&|^<>=?:,.)\]]|\?\.)/.test(after) || before.trim() === '';
      if (!goesOn) push(i, '\n');
    }
    i++;
  }
  out.push({ text: code.slice(start), end: '' });
  return out;
}

function timedOut(limitMs: number): Error {
  const err = new Error(`eval timed out after ${limitMs / 1000} s (the node goes on; set the limit with eval --timeout SECONDS)`);
  Object.defineProperty(err, 'code', { value: 'ETIMEDOUT' });
  return err;
}

/** An error of the session's realm (or V8's timeout) as an Error of this one, with its name, message and stack. */
function ownRealm(err: unknown, limitMs: number): unknown {
  if ((err as { code?: string } | null)?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return timedOut(limitMs);
  if (err instanceof Error || !types.isNativeError(err)) return err;
  const e = err as Error;
  const copy = new Error(e.message);
  Object.defineProperty(copy, 'name', { value: e.name, configurable: true, writable: true });
  copy.stack = e.stack;
  return copy;
}

/** The value as a control answer: a string as it is (unless for a REPL, which quotes it), anything else through util.inspect. */
export function describeValue(value: unknown, forRepl = false): Evaluation {
  return { text: typeof value === 'string' && !forRepl ? value : inspect(value, { depth: 4 }), undefined: value === undefined };
}

/** One `eval`: a session of its own. */
export async function evaluate(code: string, handle: NodeHandle, timeoutMs?: number): Promise<Evaluation> {
  return describeValue(await new EvalSession(handle).run(code, timeoutMs));
}

/** Whether `code` failed only for want of more input (a REPL then asks for the next line). */
export function isIncompleteInput(code: string, err: unknown): boolean {
  if ((err as Error | null)?.name !== 'SyntaxError') return false;
  try {
    new Script(code); // compiled, never run
    return false;
  } catch (e) {
    return e instanceof SyntaxError && /Unexpected end of input|Unterminated template literal|missing \) after argument list/.test(e.message);
  }
}
