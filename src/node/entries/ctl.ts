/**
 * The entry of the control commands, `node lib/noderel-<vsn>/ctl.js <command> [args]`, exec'd by
 * `bin/<name>` for ping, status, eval, stop, restart, reload, reopen_logs, cookie, attach and
 * remote_console (client.ts). Bundled on its own (scripts/post-build.mjs) so that a command
 * measured against `node -e 0` compiles only the client: no logger, no node runtime.
 * `boot.js <command>` runs the same clients.
 */
import { CLIENT_COMMANDS, runClient } from '../control/client.js';
import { isMainModule } from './entry.js';

if (isMainModule(import.meta.filename)) {
  const [command = '', ...args] = process.argv.slice(2);
  if (!(CLIENT_COMMANDS as readonly string[]).includes(command)) {
    process.stderr.write(`ctl.js: unknown control command ${JSON.stringify(command)}; known: ${CLIENT_COMMANDS.join(', ')}\n`);
    process.exitCode = 1;
  } else {
    runClient(command, args).then(
      (code) => process.exit(code),
      (err: unknown) => {
        // a bug, not an expected failure (those are one line from runClient): keep the stack
        process.stderr.write(`${command}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
      },
    );
  }
}
