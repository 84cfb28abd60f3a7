/**
 * JavaScript evaluated inside a node for `eval`, and for the REPLs of node types with workers
 * (where the apps live in the workers, the master sends the code to one of them): an expression,
 * else statements; `await` allowed; `node`, `apps`, `config` and `lifecycle` in scope.
 */
import { inspect } from 'node:util';
import { Script } from 'node:vm';
import type { NodeHandle } from './node.js';

export interface Evaluation {
  /** The value as text: a string as it is, anything else through util.inspect. */
  text: string;
  /** The value was undefined (a REPL prints nothing then). */
  undefined: boolean;
}

export async function evaluate(code: string, handle: NodeHandle): Promise<Evaluation> {
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<unknown>;
  const names = ['node', 'apps', 'config', 'lifecycle'];
  let fn: (...a: unknown[]) => Promise<unknown>;
  try {
    fn = new AsyncFunction(...names, `return (${code}\n);`);
  } catch {
    fn = new AsyncFunction(...names, code);
  }
  const result = await fn(handle.info, Object.fromEntries(handle.apps), handle.config, handle.lifecycle);
  return { text: typeof result === 'string' ? result : inspect(result, { depth: 4 }), undefined: result === undefined };
}

/** Whether `code` failed only for want of more input (a REPL then asks for the next line). */
export function isIncompleteInput(code: string, err: unknown): boolean {
  if (!(err instanceof SyntaxError)) return false;
  try {
    new Script(code); // compiled, never run: the wrapped forms above say '}' where the input ended
    return false;
  } catch (e) {
    return e instanceof SyntaxError && /Unexpected end of input|Unterminated template literal|missing \) after argument list/.test(e.message);
  }
}
