/**
 * Runs a plain Node program inside this process as if `node FILE args...` had started it:
 * `process.argv` becomes `[node, FILE, ...args]` and `Module.runMain` loads FILE as the main
 * module, so `require.main === module` holds for CommonJS and
 * `process.argv[1] === fileURLToPath(import.meta.url)` for ESM (.mjs, or .js under
 * `"type": "module"`). Used for `program` apps and for `escript`.
 *
 * A CommonJS program that throws while loading throws here; an ES module's load is
 * asynchronous and its errors surface as an uncaught exception (as with `node FILE`).
 */
import { runMain } from 'node:module';
import { resolve } from 'node:path';

export function runAsMain(file: string, args: readonly string[] = []): void {
  const entry = resolve(file);
  process.argv = [process.argv[0] ?? process.execPath, entry, ...args];
  runMain(entry);
}
