/**
 * The REPL evaluated inside a running node: `console` runs it on the terminal, `attach` and
 * `remote_console` over the control channel. Each REPL is an evaluation session (evaluate.ts):
 * Node's REPL semantics, its own bindings for as long as it is open, the node's globals, and
 * the apps' state, their config, the lifecycle and the node info in scope; every input runs with
 * a time limit, so an endless loop cannot freeze the node. In a node type with workers the apps
 * live in the workers: the master's REPL sends each input to a ready worker (NodeHandle.evaluate,
 * the same worker for the whole session while it lives) and prints what it answers.
 */
import { Recoverable, type REPLServer, start as startRepl } from 'node:repl';
import { inspect } from 'node:util';
import { randomBytes } from './digest.js';
import { DEFAULT_EVAL_TIMEOUT_MS, EvalSession, isIncompleteInput } from './evaluate.js';
import type { NodeHandle } from '../supervision/node-types.js';

export interface NodeReplOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  terminal?: boolean;
  /** The time limit of each input (default DEFAULT_EVAL_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Called when the REPL is left (Ctrl-D, `.exit`). */
  onExit(): void;
}

type Done = (err: Error | null, result?: unknown) => void;

export function startNodeRepl(node: NodeHandle, opts: NodeReplOptions): REPLServer {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EVAL_TIMEOUT_MS;
  const remote = node.evaluate?.bind(node);
  const session = randomBytes(9).toString('base64url');
  let local: EvalSession | undefined;
  const run = (code: string): Promise<unknown> => {
    if (remote) return remote(code, { session, timeoutMs }).then((r) => (r.undefined ? undefined : { [inspect.custom]: () => r.text }));
    local ??= new EvalSession(node);
    return local.run(code, timeoutMs);
  };
  const server = startRepl({
    prompt: `${node.info.name}> `,
    input: opts.input,
    output: opts.output,
    terminal: opts.terminal,
    useGlobal: true, // no context of the REPL's own: the session has one
    ignoreUndefined: true,
    eval: (code: string, _context: unknown, _file: string, done: Done) => {
      if (code.trim() === '') return done(null, undefined);
      run(code).then(
        (value) => done(null, value),
        (err: Error & { incomplete?: boolean }) => done(err.incomplete || isIncompleteInput(code, err) ? new Recoverable(err) : err),
      );
    },
  });
  if (remote) {
    opts.output.write(`(the apps run in the workers: each input is evaluated in a ready worker, with node, apps, config and lifecycle in scope)\n`);
    server.displayPrompt();
  }
  server.on('exit', () => {
    node.endEvalSession?.(session);
    opts.onExit();
  });
  return server;
}
