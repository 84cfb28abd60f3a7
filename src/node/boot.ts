/**
 * The entry of every node: `node <vm.args flags> lib/noderel-<vsn>/boot.js <command> [args]`,
 * exec'd by `bin/<name>` with the launcher environment (ARCHITECTURE.md). Dispatches on the
 * command, and is the one place in the node runtime that prints errors and picks exit codes:
 * an expected error (BootError) is one line, anything else is a bug and keeps its stack.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isBootError } from './errors.js';
import { runEscript } from './escript.js';
import { readLaunchEnv } from './launch-env.js';
import { consoleSink, createLogger, describeError, isLevel, LEVELS, type LogControl, type Logger } from './log.js';
import { planNode, runForeground } from './node.js';
import { startNodeRepl } from './repl.js';

export const COMMANDS = ['foreground', 'console', 'escript'] as const;
const USAGE = 'usage: boot.js foreground | console | escript FILE [ARGS...]';

/**
 * Runs `command`. Resolves with the exit code, or with `undefined` when the process should end
 * on its own (escript: the script's exit code is the process's).
 */
export async function boot(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  const [command, ...rest] = argv;
  const control = logControlFrom(env);
  let log: Logger = createLogger(env.NODEREL_NODE_NAME || 'noderel', control);
  if (env.NODEREL_LOG_LEVEL && !isLevel(env.NODEREL_LOG_LEVEL)) {
    log.warn(`NODEREL_LOG_LEVEL=${env.NODEREL_LOG_LEVEL} is not a level; using ${control.level} (levels: ${LEVELS.join(', ')})`);
  }
  try {
    switch (command) {
      case 'foreground': {
        const plan = planNode(readLaunchEnv(env), env);
        log = createLogger(plan.info.name, control);
        return await runForeground(plan, control);
      }
      case 'console': {
        // foreground plus a REPL inside the node; leaving the REPL stops the node gracefully.
        const plan = planNode(readLaunchEnv(env), env);
        log = createLogger(plan.info.name, control);
        return await runForeground(plan, control, {
          onReady(node) {
            startNodeRepl(node, {
              input: process.stdin,
              output: process.stdout,
              terminal: process.stdin.isTTY,
              onExit: () => {
                log.info('console closed; stopping the node gracefully');
                node.stop();
              },
            });
          },
        });
      }
      case 'escript': {
        const [file, ...args] = rest;
        if (!file) {
          process.stderr.write(`escript: no script given; ${USAGE}\n`);
          return 1;
        }
        runEscript(file, args, env);
        return undefined;
      }
      default:
        process.stderr.write(
          `${command === undefined ? 'no command' : `unknown command ${JSON.stringify(command)}`}; known: ${COMMANDS.join(', ')}\n${USAGE}\n`,
        );
        return 1;
    }
  } catch (err) {
    log.error(describeError(err, !isBootError(err)));
    return 1;
  }
}

function logControlFrom(env: NodeJS.ProcessEnv): LogControl {
  const wanted = env.NODEREL_LOG_LEVEL;
  return { level: wanted && isLevel(wanted) ? wanted : 'info', sink: consoleSink() };
}

function isEntry(): boolean {
  const main = process.argv[1];
  if (!main) return false;
  try {
    return fs.realpathSync(main) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  void boot(process.argv.slice(2)).then((code) => {
    if (code !== undefined) process.exit(code);
  });
}
