/**
 * `noderel systemd`: a template unit, `<name>@.service`, one instance per node type
 * (`systemctl enable --now kazoo@ecallmgr`), for a release installed at `prefix`.
 *
 * Why `Type=forking` on `bin/<name> start` and not `Type=notify`: `start` returns only once the
 * node's apps are ready, and fails with the reason when they are not, so `systemctl start`
 * succeeds only for a node that serves and fails with the boot's own message (in the journal)
 * otherwise; the pid file it names is written before it returns. `Type=notify` needs a datagram
 * on a Unix socket (`NOTIFY_SOCKET`), which Node has no API for (node:dgram is UDP only), and
 * `systemd-notify` run from the node is racy (the message can outlive the process systemd must
 * attribute it to). The price: the node logs to its console.log (logrotate, `RUNNER_LOG_DIR`),
 * not to the journal. With `journal` (`--journal`) the unit runs `bin/<name> foreground`
 * instead (`Type=exec`: stdout and stderr to the journal) and still reports readiness honestly:
 * the node writes its start status (`NODEREL_START_STATUS`, as for `start`) and `ExecStartPost`
 * waits for it, so the unit is active only once the apps are ready, and fails with the node's
 * reason otherwise.
 */
import type { ResolvedConfig } from './config/resolve.js';

export interface SystemdOptions {
  /** Where the release is installed (its root: bin/, lib/, releases/). */
  readonly prefix: string;
  /** The user (and group) the node runs as; none: systemd's default (root). */
  readonly user?: string;
  /** Run the node in the foreground, logging to the journal (Type=exec), instead of `start`. */
  readonly journal?: boolean;
}

/** `bin/<name> stop`'s own limit (its default); systemd's stop timeout leaves room beyond it. */
const STOP_TIMEOUT_S = 60;

/** The unit text for `config`'s release installed at `o.prefix`. */
export function renderSystemdUnit(config: ResolvedConfig, o: SystemdOptions): string {
  const { name } = config;
  const bin = `${o.prefix}/bin/${name}`;
  const startS = Math.ceil(Math.max(60_000, ...config.apps.map((a) => a.startTimeoutMs)) / 1000);
  const lines = [
    `# ${name} ${config.version}, one service per node type (${config.nodeTypes.map((t) => t.name).join(', ')}):`,
    `#   systemctl enable --now ${name}@${config.defaultNodeType}`,
    ...(o.journal
      ? ['# Written by `noderel systemd --journal`. The node runs in the foreground, logging to the', '# journal; ExecStartPost waits until its apps are ready, so `systemctl start` fails when it does not come up.']
      : ['# Written by `noderel systemd`. Type=forking: `bin/<name> start` returns once the apps are', '# ready (or fails with why), so `systemctl start` fails when the node does not come up.']),
    '[Unit]',
    `Description=${name} ${config.version} node %i`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    ...(o.journal ? journalService(name, bin) : forkingService(bin)),
    'Environment=REL=%i',
    // the node name is the instance, so the pid file has a path systemd can be told
    'Environment=NODE_NAME=%i',
    `Environment=RELEASE_TMP=/run/${name}`,
    `Environment=RUNNER_LOG_DIR=/var/log/${name}`,
    `RuntimeDirectory=${name}/%i`,
    'RuntimeDirectoryMode=0700',
    `LogsDirectory=${name}`,
    `PIDFile=/run/${name}/%i/node.pid`,
    ...(o.user === undefined ? [] : [`User=${o.user}`, `Group=${o.user}`]),
    `WorkingDirectory=${o.prefix}`,
    // HUP: a master replaces its workers with the new config; a single-process node reloads
    'ExecReload=/bin/kill -HUP $MAINPID',
    // the staged shutdown's first stage (drain), waited for; what is left then gets TERM (the
    // next stage) from systemd, on the main process only (mixed: a master stops its own workers)
    `ExecStop=${bin} stop --timeout ${STOP_TIMEOUT_S}`,
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    `TimeoutStartSec=${startS + 30}`,
    `TimeoutStopSec=${STOP_TIMEOUT_S + 30}`,
    'Restart=on-failure',
    'RestartSec=2',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

/** `start` detaches and returns once the apps are ready: systemd follows the PID file. */
function forkingService(bin: string): string[] {
  return ['Type=forking', `ExecStart=${bin} start`];
}

/**
 * `foreground`, output to the journal; the node reports its start (ready, or failed and why) in
 * a status file, which ExecStartPost waits for (the unit is activating until then) and removes.
 */
function journalService(name: string, bin: string): string[] {
  const status = `/run/${name}/%i/start.status`;
  const wait = [
    `f=${status}`,
    'while [ ! -s "$f" ]; do sleep 0.1; done',
    'read -r verdict detail <"$f"',
    'rm -f "$f"',
    '[ "$verdict" = ready ] && exit 0',
    'echo "Node %i failed to start: $detail" >&2',
    'exit 1',
  ].join('; ');
  // systemd expands $VAR in command lines itself: $$ is the shell's $
  return [
    'Type=exec',
    `Environment=NODEREL_START_STATUS=${status}`,
    `ExecStartPre=/bin/rm -f ${status}`,
    `ExecStart=${bin} foreground`,
    `ExecStartPost=/bin/sh -c '${wait.replaceAll('$', () => '$$')}'`,
    'StandardOutput=journal',
    'StandardError=journal',
  ];
}
