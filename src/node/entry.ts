/** Whether the module at `moduleUrl` (its `import.meta.url`) is the script Node was started with. */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export function isMainModule(moduleUrl: string): boolean {
  const main = process.argv[1];
  if (!main) return false;
  try {
    return fs.realpathSync(main) === fs.realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
