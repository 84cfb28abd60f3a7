/** Reads a config file named by the release config, failing with one line that says which. */
import fs from 'node:fs';
import { NoderelError } from '../errors.js';
import { displayPath } from '../reporter.js';

/** `what` names the config key that points at the file (`vm.args`, `sys.config`). */
export function readConfigFile(abs: string, code: string, what: string): string {
  try {
    return fs.readFileSync(abs, 'utf8');
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') {
      throw new NoderelError(code, `${displayPath(abs)}: no such file`, { hint: `create it or fix the ${what} path in the release config` });
    }
    throw new NoderelError(code, `${displayPath(abs)}: cannot read (${errno ?? String(err)})`, { cause: err });
  }
}
