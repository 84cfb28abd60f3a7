/**
 * A real terminal for interactive tests: each session runs on its own tmux server socket (so
 * parallel test files never meet), we type with send-keys and read the screen with capture-pane.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export class Terminal {
  readonly socket: string;
  readonly session = 'noderel';

  private constructor(socket: string) {
    this.socket = socket;
  }

  /** Starts `command` (a shell command line) in a new 160x50 terminal, in `cwd` (default: ours). */
  static start(command: string, env: NodeJS.ProcessEnv = {}, cwd: string = process.cwd()): Terminal {
    const socket = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-tmux-')), 'sock');
    const t = new Terminal(socket);
    const exports = Object.entries(env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `export ${k}='${String(v).replace(/'/g, "'\\''")}'; `)
      .join('');
    // The trailing sleep keeps the pane (and its last screen) after the command ends.
    t.tmux('new-session', '-d', '-s', t.session, '-x', '160', '-y', '50', '-c', cwd, `${exports}${command}; echo "[exit $?]"; sleep 600`);
    return t;
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8' });
  }

  /** Types text (literally) and optionally presses Enter. */
  type(text: string, enter = true): void {
    this.tmux('send-keys', '-t', this.session, '-l', text);
    if (enter) this.tmux('send-keys', '-t', this.session, 'Enter');
  }

  /** Presses keys by tmux name: `C-d`, `C-c`, `Enter`. */
  press(...keys: string[]): void {
    this.tmux('send-keys', '-t', this.session, ...keys);
  }

  /** The whole scrollback and screen as text. */
  screen(): string {
    return this.tmux('capture-pane', '-p', '-J', '-S', '-2000', '-t', this.session);
  }

  /** Waits until the screen matches `re` (polling; the terminal has no events to wait on). */
  async waitFor(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.screen();
      if (re.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`terminal never showed ${re}; screen:\n${text}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills the tmux server and everything it runs. */
  close(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone
    }
    fs.rmSync(path.dirname(this.socket), { recursive: true, force: true });
  }
}
