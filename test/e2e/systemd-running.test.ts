/**
 * The unit `noderel systemd` writes, under a real systemd: systemd 252 (Debian bookworm) as PID 1
 * of a runc container sharing the host's network, the demo release `kazoo` installed in it at
 * /opt/kazoo. `systemctl start` returns once the apps answer and fails with the node's reason
 * when they cannot; reload is HUP; a USR2 successor becomes the service's main process once the
 * old master quits (systemd reads the PID file again), as does an `upgrade`'s; a killed node is restarted; stop leaves
 * nothing running. test/e2e/systemd.test.ts checks the unit file and its commands without systemd.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noderel, repoRoot, tempDir } from '../helpers/project.js';
import { freePorts } from '../helpers/ports.js';
import { httpGet } from '../helpers/sandbox.js';
import { bootSystemd, systemdContainersUsable, type SystemdContainer } from '../helpers/systemd-container.js';

const usable = systemdContainersUsable();
if (!usable.ok) console.log(`skipping the tests under a running systemd: ${usable.why}`);

describe.skipIf(!usable.ok)('the kazoo unit under a running systemd', { timeout: 600_000 }, () => {
  let sd: SystemdContainer;
  let project: { dir: string; cleanup: () => void };
  let crossbar: number;
  let ecallmgr: number;
  const show = (unit: string, prop: string) => sd.exec(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.trim();
  const pidFile = (node: string) => sd.exec(['cat', `/run/kazoo/${node}/node.pid`]).stdout.trim();
  const unit = 'kazoo@kazoo_apps';
  /** What systemd and the node said, for a failing assertion. */
  const diag = (u: string, node = 'kazoo_apps') =>
    [
      ['ActiveState', 'SubState', 'Result', 'MainPID', 'NRestarts'].map((p) => `${p}=${show(u, p)}`).join(' '),
      sd.exec(['journalctl', '--no-pager', '-n', '40', '-u', u]).stdout,
      sd.exec(['tail', '-n', '30', `/var/log/kazoo/${node}/console.log`]).stdout,
    ].join('\n');
  /** `bin/kazoo ARGS` inside, with the unit's environment. */
  const kazoo = (node: string, ...args: string[]) =>
    sd.exec(['env', `REL=${node}`, `NODE_NAME=${node}`, 'RELEASE_TMP=/run/kazoo', 'RUNNER_LOG_DIR=/var/log/kazoo', '/opt/kazoo/bin/kazoo', ...args]);
  /** As an operator does after USR2: wait until the new master answers as the node (it is ready), then QUIT the old one. */
  const quitOldOnceReady = async (old: string, next: string) => {
    await sd.waitFor(`the new master ${next} to be ready`, () => new RegExp(`"pid":\\s*${next}\\b[\\s\\S]*"stage":\\s*"running"`).test(kazoo('kazoo_apps', 'status', '--json').stdout));
    expect(sd.exec(['kill', '-QUIT', old]).status).toBe(0);
  };
  /** Waits for the unit to be active (a state systemd may pass through others to reach). */
  const active = (u: string, node = 'kazoo_apps') =>
    sd.waitFor(`${u} to be active`, () => show(u, 'ActiveState') === 'active', 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${diag(u, node)}`);
    });

  beforeAll(async () => {
    project = tempDir('noderel-kazoo-systemd-');
    for (const d of ['rel', 'apps']) fs.cpSync(path.join(repoRoot, d), path.join(project.dir, d), { recursive: true });
    const built = noderel(project.dir, ['build', '-q']);
    expect(built.code, built.stderr).toBe(0);
    sd = await bootSystemd();
    fs.cpSync(path.join(project.dir, '_rel', 'kazoo'), path.join(sd.rootfs, 'opt', 'kazoo'), { recursive: true });
    // version 4.3.1 as a tarball beside it, for `upgrade`
    const tarred = noderel(project.dir, ['tar', '-q'], { KAZOO_VERSION: '4.3.1' });
    expect(tarred.code, tarred.stderr).toBe(0);
    fs.copyFileSync(path.join(project.dir, '_rel', 'kazoo-4.3.1.tar.gz'), path.join(sd.rootfs, 'opt/kazoo/releases/kazoo-4.3.1.tar.gz'));
    const written = noderel(project.dir, ['systemd', '--prefix', '/opt/kazoo', '--unit-file', path.join(sd.rootfs, 'etc/systemd/system/kazoo@.service')]);
    expect(written.code, written.stderr).toBe(0);
    const journalUnit = noderel(project.dir, ['systemd', '--journal', '--prefix', '/opt/kazoo', '--unit-file', path.join(sd.rootfs, 'etc/systemd/system/kazoo-journal@.service')]);
    expect(journalUnit.code, journalUnit.stderr).toBe(0);
    [crossbar, ecallmgr] = await freePorts(2);
    for (const u of ['kazoo@', 'kazoo-journal@']) {
      const dropIn = path.join(sd.rootfs, `etc/systemd/system/${u}.service.d`);
      fs.mkdirSync(dropIn, { recursive: true });
      fs.writeFileSync(path.join(dropIn, 'ports.conf'), `[Service]\nEnvironment=CROSSBAR_PORT=${crossbar} ECALLMGR_PORT=${ecallmgr}\n`);
    }
    expect(sd.exec(['systemctl', 'daemon-reload']).status).toBe(0);
  }, 600_000);
  afterAll(() => {
    sd?.destroy();
    project?.cleanup();
  });

  it('systemctl start returns once the apps answer; the main process is the one in the PID file; reload (HUP) keeps it serving', async () => {
    const started = sd.exec(['systemctl', 'start', unit]);
    expect(started.status, `${started.stderr}\n${diag(unit)}`).toBe(0);
    expect(show(unit, 'ActiveState')).toBe('active');
    expect((await httpGet(crossbar, '/')).status).toBe(200); // no waiting: start returned after ready
    const main = show(unit, 'MainPID');
    expect(main).toBe(pidFile('kazoo_apps'));
    const reloaded = sd.exec(['systemctl', 'reload', unit]);
    expect(reloaded.status, reloaded.stderr).toBe(0);
    expect(show(unit, 'MainPID')).toBe(main);
    expect((await httpGet(crossbar, '/')).status).toBe(200);
  });

  it('a USR2 successor becomes the main process when the old master quits, and keeps serving', async () => {
    const old = show(unit, 'MainPID');
    expect(sd.exec(['systemctl', 'kill', '--kill-whom=main', '-s', 'USR2', unit]).status).toBe(0);
    await sd.waitFor('the new master to write its PID file', () => /^\d+$/.test(pidFile('kazoo_apps')) && pidFile('kazoo_apps') !== old);
    const next = pidFile('kazoo_apps');
    await quitOldOnceReady(old, next);
    await sd.waitFor('systemd to take the new master as the main process', () => show(unit, 'MainPID') === next).catch((err: Error) => {
      throw new Error(`${err.message}\n${diag(unit)}`);
    });
    await active(unit);
    expect(show(unit, 'MainPID')).toBe(next);
    expect(show(unit, 'NRestarts')).toBe('0');
    expect((await httpGet(crossbar, '/')).status).toBe(200);
  });

  it('`upgrade` (run as the unit runs its commands) hands over to a new master of 4.3.1, which systemd takes as the main process', async () => {
    const old = show(unit, 'MainPID');
    const upgraded = kazoo('kazoo_apps', 'upgrade', '4.3.1');
    expect(upgraded.status, upgraded.stderr).toBe(0);
    await sd.waitFor('systemd to take the upgraded master as the main process', () => show(unit, 'MainPID') !== old && show(unit, 'MainPID') === pidFile('kazoo_apps'));
    await active(unit);
    const res = await httpGet(crossbar, '/');
    expect(JSON.parse(res.body).version).toBe('4.3.1');
  });

  it('a node killed outright is restarted by systemd (Restart=on-failure)', async () => {
    const main = show(unit, 'MainPID');
    expect(main).toMatch(/^[1-9]\d*$/);
    expect(sd.exec(['systemctl', 'kill', '--kill-whom=main', '-s', 'KILL', unit]).status).toBe(0);
    try {
      await sd.waitFor('the restart', () => Number(show(unit, 'NRestarts')) >= 1 && show(unit, 'ActiveState') === 'active' && !['0', main].includes(show(unit, 'MainPID')));
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${diag(unit)}`);
    }
    expect((await httpGet(crossbar, '/')).status).toBe(200);
  });

  it('systemctl stop runs the staged shutdown and leaves no process of the node', () => {
    const stopped = sd.exec(['systemctl', 'stop', unit]);
    expect(stopped.status, stopped.stderr).toBe(0);
    expect(show(unit, 'ActiveState')).toBe('inactive');
    expect(show(unit, 'Result')).toBe('success');
    expect(sd.exec(['pgrep', '-f', 'kazoo_apps']).stdout.trim()).toBe('');
  });

  it('systemctl start fails when the node cannot come up, with the node\'s reason in the journal', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(ecallmgr, '0.0.0.0', () => resolve()));
    try {
      const started = sd.exec(['systemctl', 'start', 'kazoo@ecallmgr']);
      expect(started.status).not.toBe(0);
      expect(show('kazoo@ecallmgr', 'ActiveState')).toMatch(/^(failed|activating)$/);
      const journal = sd.exec(['journalctl', '--no-pager', '-u', 'kazoo@ecallmgr']).stdout;
      expect(journal).toMatch(/failed to start: .*EADDRINUSE|address already in use/i);
    } finally {
      sd.exec(['systemctl', 'stop', 'kazoo@ecallmgr']);
      blocker.close();
    }
  });

  describe('--journal: the node in the foreground, logging to the journal', () => {
    const ju = 'kazoo-journal@kazoo_apps';

    it('systemctl start returns once the apps answer, the node logs to the journal, USR2 hands over, stop stops', async () => {
      const started = sd.exec(['systemctl', 'start', ju]);
      expect(started.status, `${started.stderr}\n${diag(ju)}`).toBe(0);
      expect((await httpGet(crossbar, '/')).status).toBe(200);
      const main = show(ju, 'MainPID');
      expect(main).toBe(pidFile('kazoo_apps'));
      expect(sd.exec(['journalctl', '--no-pager', '-u', ju]).stdout).toMatch(/node kazoo_apps ready \(kazoo 4\.3\.\d, apps: crossbar; 2 workers\)/);
      expect(sd.exec(['systemctl', 'kill', '--kill-whom=main', '-s', 'USR2', ju]).status).toBe(0);
      await sd.waitFor('the new master to write its PID file', () => /^\d+$/.test(pidFile('kazoo_apps')) && pidFile('kazoo_apps') !== main);
      const next = pidFile('kazoo_apps');
      await quitOldOnceReady(main, next);
      await sd.waitFor('systemd to take the new master as the main process', () => show(ju, 'MainPID') === next);
      await active(ju);
      expect((await httpGet(crossbar, '/')).status).toBe(200);
      const stopped = sd.exec(['systemctl', 'stop', ju]);
      expect(stopped.status, stopped.stderr).toBe(0);
      expect(show(ju, 'ActiveState')).toBe('inactive');
      expect(sd.exec(['pgrep', '-f', 'kazoo_apps']).stdout.trim()).toBe('');
    });

    it('systemctl start fails when the node cannot come up, with its reason', async () => {
      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(ecallmgr, '0.0.0.0', () => resolve()));
      try {
        const started = sd.exec(['systemctl', 'start', 'kazoo-journal@ecallmgr']);
        expect(started.status).not.toBe(0);
        expect(show('kazoo-journal@ecallmgr', 'ActiveState')).not.toBe('active');
        expect(sd.exec(['journalctl', '--no-pager', '-u', 'kazoo-journal@ecallmgr']).stdout).toMatch(/EADDRINUSE|address already in use/i);
      } finally {
        sd.exec(['systemctl', 'stop', 'kazoo-journal@ecallmgr']);
        blocker.close();
      }
    });
  });

  describe('socket activation: a socket unit holds the port, the node serves on it', () => {
    /** One HTTP GET on a new connection: its status, or the error's code. */
    const get = (port: number, urlPath: string) => httpGet(port, urlPath).then((r) => String(r.status), (err: NodeJS.ErrnoException) => err.code ?? String(err));

    for (const [node, what] of [['kazoo_apps', 'a master and its workers'], ['ecallmgr', 'a single-process node']] as const) {
      it(`${node} (${what}): the first connection starts the service and is answered; restarts refuse no connection`, async () => {
        const su = `kazoo@${node}`;
        const port = node === 'kazoo_apps' ? crossbar : ecallmgr;
        const urlPath = node === 'kazoo_apps' ? '/' : '/health';
        fs.writeFileSync(path.join(sd.rootfs, `etc/systemd/system/${su}.socket`), `[Socket]\nListenStream=${port}\n`);
        expect(sd.exec(['systemctl', 'daemon-reload']).status).toBe(0);
        const socket = sd.exec(['systemctl', 'start', `${su}.socket`]);
        expect(socket.status, socket.stderr).toBe(0);
        expect(show(`${su}.service`, 'ActiveState')).toBe('inactive');
        expect(await get(port, urlPath)).toBe('200'); // held in the socket's backlog while the node starts
        await active(`${su}.service`, node);
        const log = sd.exec(['cat', `/var/log/kazoo/${node}/console.log`]).stdout;
        expect(log).toMatch(new RegExp(`socket activation: listening on \\S+:${port} \\(fd 3\\) from the service manager`));

        // restarts while requests keep coming, none refused: the service's (a staged stop, then a
        // new node) and the node's own `restart` (a single-process node replaces itself)
        const restarts: [string, string[]][] = [
          ['systemctl restart', ['systemctl', 'restart', `${su}.service`]],
          ['bin/kazoo restart', ['env', `REL=${node}`, `NODE_NAME=${node}`, 'RELEASE_TMP=/run/kazoo', 'RUNNER_LOG_DIR=/var/log/kazoo', '/opt/kazoo/bin/kazoo', 'restart']], // as kazoo(), without blocking
        ];
        for (const [name, argv] of restarts) {
          const restart = sd.execAsync(argv);
          let restarting = true;
          void restart.then(() => (restarting = false));
          const results: string[] = [];
          while (restarting || results.length < 20) results.push(await get(port, urlPath));
          const done = await restart;
          expect(done.status, `${name}: ${done.stderr}`).toBe(0);
          expect(results.filter((r) => r !== '200'), name).toEqual([]);
          await active(`${su}.service`, node);
        }
        sd.exec(['systemctl', 'stop', `${su}.socket`, `${su}.service`]);
      });
    }
  });
});
