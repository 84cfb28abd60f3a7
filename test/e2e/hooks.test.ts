/**
 * relx's extended start script hooks run by the launcher, and overlays next to a running node
 * (issue 10, items 17 and 18). The ops fixture, built with a hook for each of pre_start,
 * post_start, pre_stop, post_stop and status, and overlays onto log/, tmp/ and bin/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { copyFixture, noderel, tempDir, writeFiles } from '../helpers/project.js';
import { alive, alsoRemove, cleanupSandboxes, sandbox as makeSandbox } from '../helpers/sandbox.js';

let project: { dir: string; cleanup: () => void };
let rel: string;
let bin: string;

// Each hook records what it saw (in $HOOK_LOG), prints on stdout and stderr, and fails with 7
// when its name is in $HOOK_FAIL. `up` means the node answers a ping at that moment.
const HOOK = `#!/bin/sh
if "$RELEASE_ROOT_DIR/bin/ops" ping >/dev/null 2>&1; then up=up; else up=down; fi
[ -z "\${HOOK_LOG:-}" ] || echo "$NODEREL_HOOK $up $REL_NAME $REL_VSN $REL $NODEREL_NODE_NAME $PWD \${OPS_FROM_VM_ARGS:-} \${NODEREL_START_STATUS:-}" >>"$HOOK_LOG"
echo "hook $NODEREL_HOOK says hello"
echo "hook $NODEREL_HOOK on stderr" >&2
case " \${HOOK_FAIL:-} " in *" $NODEREL_HOOK "*) exit 7 ;; esac
`;
// The status hook asks the launcher for the status itself: a launcher run by a hook of its own
// node runs no hooks, or this would never end.
const STATUS_HOOK = `#!/bin/sh
echo "database: $("$RELEASE_ROOT_DIR/bin/ops" status | grep -c '^stage:') stage line, connected"
case " \${HOOK_FAIL:-} " in *" status "*) exit 5 ;; esac
`;

beforeAll(() => {
  project = copyFixture('ops');
  writeFiles(project.dir, { 'rel/hooks/hook.sh': HOOK, 'rel/hooks/status.sh': STATUS_HOOK });
  const config = path.join(project.dir, 'rel/relx.config');
  fs.appendFileSync(
    config,
    `hooks:
  pre_start: rel/hooks/hook.sh
  post_start: rel/hooks/hook.sh
  pre_stop: rel/hooks/hook.sh
  post_stop: rel/hooks/hook.sh
  status: rel/hooks/status.sh
overlays:
  - mkdir: log
  - mkdir: tmp
  - mkdir: log/sasl
  - copy: {from: rel/hooks, to: bin/tools}
`,
  );
  const r = noderel(project.dir, ['build', '-q']);
  if (r.code !== 0) throw new Error(`noderel build failed:\n${r.stderr}`);
  rel = path.join(project.dir, '_rel', 'ops');
  bin = path.join(rel, 'bin', 'ops');
});
afterAll(() => project?.cleanup());

/** Kills the nodes running from the release's own tmp/ (the overlay test), by their pid files. */
function killReleaseNodes(): void {
  const tmp = path.join(rel, 'tmp');
  for (const node of fs.existsSync(tmp) ? fs.readdirSync(tmp) : []) {
    const file = path.join(tmp, node, 'node.pid');
    if (!fs.existsSync(file)) continue;
    try {
      process.kill(Number(fs.readFileSync(file, 'utf8')), 'SIGKILL');
    } catch {
      // gone
    }
  }
}
afterEach(() => {
  cleanupSandboxes();
  killReleaseNodes();
});

/** A sandbox whose hooks record what they see in a file of their own; `seen()` reads it. */
async function sandbox(extra: NodeJS.ProcessEnv = {}) {
  const dir = tempDir('noderel-hooks-');
  alsoRemove(dir);
  const hookLog = path.join(dir.dir, 'hooks.log');
  const s = await makeSandbox(bin, 'web', 'OPS_PORT', { OPS_COOKIE: undefined, OPS_CONFIG: undefined, HOOK_FAIL: undefined, HOOK_LOG: hookLog, ...extra });
  const seen = () => (fs.existsSync(hookLog) ? fs.readFileSync(hookLog, 'utf8').split('\n').filter(Boolean) : []);
  return Object.assign(s, { seen });
}

describe('hooks (relx extended start script)', () => {
  it('are shipped and listed in release.json, status among them', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(rel, 'releases/1.0.0/release.json'), 'utf8')) as { hooks: Record<string, string> };
    expect(manifest.hooks).toEqual({
      pre_start: 'releases/1.0.0/hooks/pre_start',
      post_start: 'releases/1.0.0/hooks/post_start',
      pre_stop: 'releases/1.0.0/hooks/pre_stop',
      post_stop: 'releases/1.0.0/hooks/post_stop',
      status: 'releases/1.0.0/hooks/status',
    });
  });

  it('start runs pre_start before the node exists and post_start once it is ready; stop runs pre_stop while it runs and post_stop once it is gone; with the release environment, in the release root', async () => {
    const s = await sandbox();
    const start = s.run(['start']);
    expect(start.status, start.stderr).toBe(0);
    expect(start.stdout).toBe('hook pre_start says hello\nhook post_start says hello\n');
    expect(start.stderr).toBe('hook pre_start on stderr\nhook post_start on stderr\n');
    const node = JSON.parse(s.run(['status', '--json']).stdout).node as string;
    const pid = s.pid()!;
    const stop = s.run(['stop']);
    expect(stop.status, stop.stderr).toBe(0);
    expect(stop.stdout).toBe('hook pre_stop says hello\nhook post_stop says hello\n');
    expect(alive(pid)).toBe(false);
    // the environment: relx's names, the node's NODEREL_* variables, vm.args -env; nothing internal
    const env = `ops 1.0.0 web ${node} ${rel} yes `;
    expect(s.seen()).toEqual([`pre_start down ${env}`, `post_start up ${env}`, `pre_stop up ${env}`, `post_stop down ${env}`]);
  });

  it('a failing pre_start aborts start (and foreground) with its output, exit 1: no node, no log', async () => {
    const s = await sandbox({ HOOK_FAIL: 'pre_start' });
    for (const cmd of ['start', 'foreground']) {
      const r = s.run([cmd]);
      expect(r.status, cmd).toBe(1);
      expect(r.stdout, cmd).toBe('hook pre_start says hello\n');
      expect(r.stderr, cmd).toMatch(/^hook pre_start on stderr\nNode web@\S+ not started: its pre_start hook \(releases\/1\.0\.0\/hooks\/pre_start\) exited with code 7\n$/);
    }
    expect(s.pid()).toBeUndefined();
    expect(fs.existsSync(s.logs)).toBe(false);
    expect(s.seen().map((l) => l.split(' ')[0])).toEqual(['pre_start', 'pre_start']);
  });

  it('a failing post_start: exit 3, saying the node started and keeps running', async () => {
    const s = await sandbox({ HOOK_FAIL: 'post_start' });
    const r = s.run(['start']);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/\nNode web@\S+ started \(it is running\), but its post_start hook \(releases\/1\.0\.0\/hooks\/post_start\) exited with code 7\n$/);
    expect(s.run(['ping']).stdout).toBe('pong\n');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a failing pre_stop leaves the node running (exit 1); a failing post_stop: exit 3 once it is gone', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    const refused = s.run(['stop'], { HOOK_FAIL: 'pre_stop' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/\nNode web@\S+ not stopped: its pre_stop hook \(releases\/1\.0\.0\/hooks\/pre_stop\) exited with code 7\n$/);
    expect(s.run(['status', '--json']).stdout).toMatch(/"stage": ?"running"/);
    const stopped = s.run(['stop'], { HOOK_FAIL: 'post_stop' });
    expect(stopped.status).toBe(3);
    expect(stopped.stderr).toMatch(/\nNode web@\S+ stopped, but its post_stop hook \(releases\/1\.0\.0\/hooks\/post_stop\) exited with code 7\n$/);
    expect(alive(pid)).toBe(false);
    // not running: the client says so, and no hook runs
    const again = s.run(['stop']);
    expect(again.status).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/^Node web@\S+ is not running!\n$/);
    expect(s.seen().map((l) => l.split(' ')[0])).toEqual(['pre_start', 'post_start', 'pre_stop', 'pre_stop', 'post_stop']);
  });

  it('status prints the node\'s status, then what the status hook prints; --json is the node\'s alone; a failing hook: exit 3; no node: exit 1, no hook', async () => {
    const s = await sandbox();
    const down = s.run(['status']);
    expect(down.status).toBe(1);
    expect(down.stdout).toBe('');
    expect(s.run(['start']).status).toBe(0);
    const status = s.run(['status']);
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^stage: {5}running$/m);
    expect(status.stdout).toMatch(/\ndatabase: 1 stage line, connected\n$/);
    expect(s.run(['status', '--json']).stdout).not.toContain('database');
    const failing = s.run(['status'], { HOOK_FAIL: 'status' });
    expect(failing.status).toBe(3);
    expect(failing.stdout).toMatch(/\ndatabase: 1 stage line, connected\n$/);
    expect(failing.stderr).toMatch(/^Node web@\S+ is running, but its status hook \(releases\/1\.0\.0\/hooks\/status\) exited with code 5\n$/);
    expect(s.run(['stop']).status).toBe(0);
  });
});

describe('overlays next to a running node', () => {
  it('a rebuild with mkdir log and tmp overlays keeps the running node\'s log, pid file and control socket', async () => {
    // The node keeps its run state and log in the release itself (the defaults).
    const s = await sandbox({ RELEASE_TMP: undefined, RUNNER_LOG_DIR: undefined });
    expect(s.run(['start']).status).toBe(0);
    const node = JSON.parse(s.run(['status', '--json']).stdout).node as string;
    const pid = s.pid()!;
    const log = path.join(rel, 'log', node, 'console.log');
    const socket = path.join(rel, 'tmp', node, 'ctl');
    expect(s.run(['eval', "console.log('before the rebuild')"]).status).toBe(0);
    fs.writeFileSync(path.join(rel, 'log/sasl/report.log'), 'kept\n');
    fs.writeFileSync(path.join(rel, 'bin/tools/mine.sh'), 'mine\n');

    const rebuild = noderel(project.dir, ['build', '-q']);
    expect(rebuild.code, rebuild.stderr).toBe(0);

    expect(fs.statSync(socket).isSocket()).toBe(true);
    expect(fs.readFileSync(path.join(rel, 'tmp', node, 'node.pid'), 'utf8').trim()).toBe(String(pid));
    expect(s.run(['ping']).stdout).toBe('pong\n');
    expect(s.pid()).toBe(pid);
    expect(s.run(['eval', "console.log('after the rebuild')"]).status).toBe(0);
    expect(fs.readFileSync(log, 'utf8')).toMatch(/before the rebuild\n(.*\n)*after the rebuild\n/);
    expect(fs.readFileSync(path.join(rel, 'log/sasl/report.log'), 'utf8')).toBe('kept\n');
    expect(fs.readFileSync(path.join(rel, 'bin/tools/mine.sh'), 'utf8')).toBe('mine\n');
    expect(fs.readFileSync(path.join(rel, 'bin/tools/hook.sh'), 'utf8')).toBe(HOOK);
    expect(s.run(['stop']).status).toBe(0);
    expect(alive(pid)).toBe(false);
  });
});
