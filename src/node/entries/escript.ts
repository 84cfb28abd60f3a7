/**
 * `bin/<name> escript FILE [ARGS...]`: runs a script with the release's runtime and environment
 * (the launcher's NODEREL_* variables), no running node needed. The script runs as the main
 * module of this process, so its exit code is the process's.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { BootError } from '../errors.js';
import { defaultRootInto } from '../release/launch-env.js';
import { runAsMain } from '../apps/run-main.js';

export function runEscript(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): void {
  const script = resolve(file);
  if (!existsSync(script)) throw new BootError('EESCRIPT', `escript: no such file ${script}`);
  defaultRootInto(env);
  runAsMain(script, args);
}
