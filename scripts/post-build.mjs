// After tsc: make the CLI executable. Kept tiny on purpose.
import fs from 'node:fs';
fs.chmodSync(new URL('../dist/cli/main.js', import.meta.url), 0o755);
