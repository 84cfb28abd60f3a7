/**
 * The entry of a worker process: `lib/noderel-<vsn>/worker-main.js`, forked by its master
 * (master.ts) with the launcher environment. A bundle of its own, beside boot.js, holds only what
 * a worker runs: every worker of every node type with workers pays for what it loads.
 */
import { isBootError } from '../errors.js';
import { readLaunchSettings } from '../release/launch-env.js';
import { createLogger, describeError, logControlFromEnv } from '../logs/log.js';
import { runWorker } from '../supervision/worker.js';

const control = logControlFromEnv(process.env);
runWorker(control).then(
  (code) => process.exit(code),
  (err: unknown) => {
    createLogger(readLaunchSettings().nodeName ?? 'noderel', control).error(describeError(err, !isBootError(err)));
    process.exit(1);
  },
);
