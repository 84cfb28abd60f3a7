/**
 * The entry of every node: `node <vm.args flags> lib/noderel-<vsn>/boot.js <command> [args]`,
 * exec'd by `bin/<name>` with the launcher environment (ARCHITECTURE.md). Dispatches on the
 * command, and is the one place in the node runtime that prints errors and picks exit codes:
 * an expected error (BootError) is one line, anything else is a bug and keeps its stack.
 */
import { isMainModule } from './entry.js';
import { isBootError } from '../errors.js';
import { readLaunchSettings, setProgramArgs } from '../release/launch-env.js';
import { createLogger, describeError, isLevel, LEVELS, logControlFromEnv, type Logger } from '../logs/log.js';

/** Commands that run a node, and the control commands that talk to one (client.ts). */
export const NODE_COMMANDS = ['foreground', 'console', 'daemon'] as const;
export const COMMANDS = [...NODE_COMMANDS, 'spawn_daemon', 'escript', 'ping', 'status', 'eval', 'stop', 'restart', 'reload', 'reopen_logs', 'cookie', 'attach', 'remote_console', 'upgrade', 'downgrade'] as const;
const USAGE = `usage: boot.js ${COMMANDS.join(' | ')} [ARGS...]`;

/**
 * Runs `command`. Resolves with the exit code, or with `undefined` when the process should end
 * on its own (escript: the script's exit code is the process's). Modules are loaded per
 * command, so a control client (`ping`) loads only what it needs.
 */
export async function boot(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  const [command, ...rest] = argv;
  const control = logControlFromEnv(env);
  const settings = readLaunchSettings(env);
  const log: Logger = createLogger(settings.nodeName ?? 'noderel', control);
  if (settings.logLevel && !isLevel(settings.logLevel)) {
    log.warn(`NODEREL_LOG_LEVEL=${settings.logLevel} is not a level; using ${control.level} (levels: ${LEVELS.join(', ')})`);
  }
  try {
    switch (command) {
      case 'foreground':
      case 'console':
      case 'daemon': {
        // A program's extra arguments come after `--`; anything else is refused, never dropped.
        if (rest.length > 0) {
          if (rest[0] !== '--') {
            process.stderr.write(`${command}: unexpected argument ${JSON.stringify(rest[0])}; a program app's arguments go after --, e.g. bin/<name> ${command === 'daemon' ? 'start' : command} -- ${rest.join(' ')} (or set args for the app in rel/relx.config)\n`);
            return 1;
          }
          setProgramArgs(env, rest.slice(1));
        }
        const { runNode } = await import('../supervision/services.js');
        return await runNode(command, control, env);
      }
      case 'spawn_daemon': {
        // Where the launcher finds no setsid(1): detach through Node (a new session), then leave.
        const { spawn } = await import('node:child_process');
        const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, 'daemon', ...rest], {
          detached: true,
          stdio: ['ignore', 'inherit', 'inherit'],
        });
        child.unref();
        return 0;
      }
      case 'escript': {
        const [file, ...args] = rest;
        if (!file) {
          process.stderr.write(`escript: no script given; ${USAGE}\n`);
          return 1;
        }
        const { runEscript } = await import('./escript.js');
        runEscript(file, args, env);
        return undefined;
      }
      case 'upgrade':
      case 'downgrade': {
        const { runUpgrade } = await import('../control/upgrade.js');
        return await runUpgrade(command, rest[0] ?? '', env);
      }
      case 'ping':
      case 'status':
      case 'eval':
      case 'stop':
      case 'restart':
      case 'reload':
      case 'reopen_logs':
      case 'cookie':
      case 'attach':
      case 'remote_console': {
        const { runClient } = await import('../control/client.js');
        return await runClient(command, rest, env);
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

if (isMainModule(import.meta.filename)) {
  void boot(process.argv.slice(2)).then((code) => {
    if (code !== undefined) process.exit(code);
  });
}
