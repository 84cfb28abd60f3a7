/**
 * The REPL evaluated inside a running node: `console` runs it on the terminal; attach and
 * remote_console will run it over the control channel. The apps' state, their config, the
 * lifecycle and the node info are in its context.
 */
import repl from 'node:repl';
import type { NodeHandle } from './node.js';

export interface NodeReplOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  terminal?: boolean;
  /** Called when the REPL is left (Ctrl-D, `.exit`). */
  onExit(): void;
}

export function startNodeRepl(node: NodeHandle, opts: NodeReplOptions): repl.REPLServer {
  const server = repl.start({
    prompt: `${node.info.name}> `,
    input: opts.input,
    output: opts.output,
    terminal: opts.terminal,
    useGlobal: true,
    ignoreUndefined: true,
  });
  Object.assign(server.context, {
    node: node.info,
    apps: Object.fromEntries(node.apps),
    config: node.config,
    lifecycle: node.lifecycle,
  });
  server.on('exit', () => opts.onExit());
  return server;
}
