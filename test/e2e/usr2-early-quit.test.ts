/**
 * USR2, then QUIT to the old node before the new one is ready (an operator, or a script, that
 * does not wait): the new node must not die with the old one's IPC channel. It takes the control
 * socket itself when the old one goes, serves, answers the launcher and stops cleanly. (It used
 * to crash sending 'ready' on the closed channel: ERR_IPC_CHANNEL_CLOSED, and the node was gone.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture } from '../helpers/project.js';
import { alive, cleanupSandboxes, httpGet, sandbox, waitFor } from '../helpers/sandbox.js';

let project: { dir: string; cleanup: () => void };
let bin: string;
beforeAll(() => {
  ({ bin, ...project } = builtFixture('ops'));
});
afterAll(() => project?.cleanup());
afterEach(cleanupSandboxes);

/** The pid in the node's pid file (not the launcher's `pid`, which also reads node.pid.oldbin). */
function pidInFile(tmp: string): number | undefined {
  for (const node of fs.existsSync(tmp) ? fs.readdirSync(tmp) : []) {
    const file = path.join(tmp, node, 'node.pid');
    if (fs.existsSync(file)) return Number(fs.readFileSync(file, 'utf8').trim()) || undefined;
  }
  return undefined;
}

describe('QUIT to the old node right after USR2', () => {
  for (const [rel, what] of [['pool', 'a master and its workers'], ['web', 'a single-process node']] as const) {
    it(`${rel} (${what}): the new node survives the old one, takes the control socket, serves and stops`, async () => {
      const s = await sandbox(bin, rel, 'OPS_PORT');
      const started = s.run(['start']);
      expect(started.status, started.stderr).toBe(0);
      const old = s.pid()!;
      process.kill(old, 'SIGUSR2');
      await waitFor(() => (pidInFile(s.tmp) ?? old) !== old, 'the new node to write its pid file');
      const next = pidInFile(s.tmp)!;
      process.kill(old, 'SIGQUIT'); // without waiting for the new one to be ready
      await waitFor(() => !alive(old), 'the old node to exit');
      await waitFor(() => s.run(['ping']).status === 0, 'the new node to answer ping', 60_000);
      expect(alive(next)).toBe(true);
      expect(s.pid()).toBe(next);
      expect((await httpGet(s.port, '/')).status).toBe(200);
      expect(fs.readFileSync(s.logFile(), 'utf8')).toMatch(/took over the control socket/);
      const stopped = s.run(['stop']);
      expect(stopped.status, stopped.stderr).toBe(0);
      expect(alive(next)).toBe(false);
    });
  }
});
