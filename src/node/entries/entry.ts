/** Whether `file` (a module's `import.meta.filename`) is the script Node was started with. */
import { realpathSync } from 'node:fs';

export function isMainModule(file: string): boolean {
  const main = process.argv[1];
  if (!main) return false;
  // the launcher runs each bundle by its absolute path: no realpath (two syscalls each) needed then
  if (main === file) return true;
  try {
    return realpathSync(main) === realpathSync(file);
  } catch {
    return false;
  }
}
