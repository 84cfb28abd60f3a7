/**
 * The REPL evaluated inside a running node: `console` runs it on the terminal, `attach` and
 * `remote_console` over the control channel. The apps' state, their config, the lifecycle and
 * the node info are in its context. In a node type with workers the apps live in the workers:
 * the master's REPL sends each input to a ready worker (NodeHandle.evaluate) and prints what it
 * answers.
 */
import repl from 'node:repl';
import { inspect } from 'node:util';
import type { NodeHandle } from './node.js';

export interface NodeReplOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  terminal?: boolean;
  /** Called when the REPL is left (Ctrl-D, `.exit`). */
  onExit(): void;
}

export function startNodeRepl(node: NodeHandle, opts: NodeReplOptions): repl.REPLServer {
  const remote = node.evaluate?.bind(node);
  const server = repl.start({
    prompt: `${node.info.name}> `,
    input: opts.input,
    output: opts.output,
    terminal: opts.terminal,
    useGlobal: !remote,
    ignoreUndefined: true,
    ...(remote && {
      eval: (code: string, _context: unknown, _file: string, done: (err: Error | null, result?: unknown) => void) => {
        if (code.trim() === '') return done(null, undefined);
        remote(code).then(
          (r) => done(null, r.undefined ? undefined : { [inspect.custom]: () => r.text }),
          (err: Error & { incomplete?: boolean }) => done(err.incomplete ? new repl.Recoverable(err) : err),
        );
      },
    }),
  });
  if (remote) {
    opts.output.write(`(the apps run in the workers: each input is evaluated in a ready worker, with node, apps, config and lifecycle in scope)\n`);
    server.displayPrompt();
  } else {
    Object.assign(server.context, {
      node: node.info,
      apps: Object.fromEntries(node.apps),
      config: node.config,
      lifecycle: node.lifecycle,
    });
  }
  server.on('exit', () => opts.onExit());
  return server;
}
