// The control channel on a real Unix socket in a temp dir: a real server, the real client, and a
// raw client speaking the wire protocol by hand where the test is about the protocol itself.
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ControlError,
  controlRequest,
  controlStream,
  parseHostPort,
  startControlServer,
  startControlTcpServer,
  type ControlServer,
  type ControlServerOptions,
} from '../../src/node/control/control.js';
import { BootError } from '../../src/node/errors.js';
import { runClient } from '../../src/node/control/client.js';
import { waitFor } from '../helpers/sandbox.js';
import { makeCa } from '../helpers/tls.js';
import { loadTlsClientConfig, loadTlsServerConfig } from '../../src/node/control/control-tls.js';

const COOKIE = 'right-cookie';

// The client imports `connect` by name; a test that needs a connect error no real socket gives
// (EACCES: root opens any socket) sets `connectFault` and the next connect fails with it.
// Likewise the client writes its messages with `writeSync` by name: `captureWrites` collects them.
const net_ = vi.hoisted(() => ({ connectFault: undefined as NodeJS.ErrnoException | undefined, writes: undefined as string[] | undefined, connects: 0 }));
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const writeSync = ((fd: number, buf: unknown, ...rest: unknown[]) => {
    if (net_.writes === undefined || (fd !== 1 && fd !== 2)) return (real.writeSync as (...a: unknown[]) => number)(fd, buf, ...rest);
    net_.writes.push(String(buf));
    return (buf as Buffer).length;
  }) as typeof real.writeSync;
  return { ...real, default: { ...real, writeSync }, writeSync };
});
vi.mock('node:net', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:net')>();
  const connect = ((...args: unknown[]) => {
    net_.connects++;
    const fault = net_.connectFault;
    if (fault === undefined) return (real.connect as (...a: unknown[]) => net.Socket)(...args);
    net_.connectFault = undefined;
    const sk = new real.Socket();
    process.nextTick(() => sk.emit('error', fault));
    return sk;
  }) as typeof real.connect;
  return { ...real, default: { ...real, connect, createConnection: connect }, connect, createConnection: connect };
});

let tmp: string;
let socketPath: string;
let servers: ControlServer[];
let sockets: Array<{ destroy(): void }>;

beforeEach(() => {
  // Short on purpose: Unix socket paths are limited to ~107 bytes.
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nrctl-'));
  socketPath = path.join(tmp, 'run', 'ecallmgr@h', 'control.sock');
  servers = [];
  sockets = [];
});

afterEach(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => s.close()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function start(extra: Partial<ControlServerOptions> = {}): Promise<ControlServer> {
  const server = await startControlServer({
    socketPath,
    cookie: COOKIE,
    requests: {
      ping: () => 'pong',
      echo: (args) => ({ args }),
      slow: async (args) => {
        await new Promise((r) => setTimeout(r, Number(args[0] ?? 50)));
        return { waited: args[0] ?? 50 };
      },
      nothing: () => undefined,
      fail: () => {
        throw new Error('the app said no');
      },
      hang: () => new Promise(() => {}),
    },
    streams: {
      // 'data' listener; greets first so the client must keep bytes that follow the ack
      echo_stream: (socket) => {
        socket.write('welcome\n');
        socket.on('data', (d) => socket.write(d));
      },
      // pipe(): the other way a handler takes the socket over
      pipe_stream: (socket) => {
        socket.pipe(socket);
      },
      // a handler that starts reading only later: the bytes wait in the socket meanwhile
      late_stream: (socket) => {
        setTimeout(() => socket.pipe(socket), 100);
      },
    },
    ...extra,
  });
  servers.push(server);
  return server;
}

/** What a rejected promise rejected with, asserting it is a ControlError with `code`. */
async function controlFailure(p: Promise<unknown>, code: ControlError['code']): Promise<ControlError> {
  const err = await p.then(
    () => {
      throw new Error(`expected ControlError ${code}, the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ControlError);
  expect((err as ControlError).code).toBe(code);
  return err as ControlError;
}

/** A client speaking the wire protocol by hand: raw writes, and lines or raw text back. */
function rawClient(p = socketPath): {
  socket: net.Socket;
  nextLine(): Promise<string>;
  text(): string;
  /** Everything received after the lines read so far, as bytes (the lines are ASCII JSON). */
  rest(): Buffer;
  /** Waits until `predicate(rest())` holds. */
  waitRest(predicate: (rest: Buffer) => boolean): Promise<Buffer>;
  closed: Promise<void>;
} {
  const socket = net.connect(p);
  sockets.push(socket);
  socket.on('error', () => {});
  let buf = '';
  let bytes = Buffer.alloc(0);
  let consumed = 0;
  let notify: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    bytes = Buffer.concat([bytes, d]);
    notify?.();
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return {
    socket,
    closed,
    text: () => buf,
    rest: () => bytes.subarray(consumed),
    async waitRest(predicate) {
      for (;;) {
        if (predicate(bytes.subarray(consumed))) return bytes.subarray(consumed);
        if (socket.destroyed) throw new Error(`closed; got ${JSON.stringify(buf.slice(consumed))}`);
        await Promise.race([new Promise<void>((r) => (notify = r)), closed]);
      }
    },
    async nextLine() {
      for (;;) {
        const nl = buf.indexOf('\n', consumed);
        if (nl >= 0) {
          const line = buf.slice(consumed, nl);
          consumed = nl + 1;
          return line;
        }
        if (socket.destroyed) throw new Error(`closed before a line; got ${JSON.stringify(buf)}`);
        await Promise.race([new Promise<void>((r) => (notify = r)), closed]);
      }
    },
  };
}

const hmac = (key: string | Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

/** A v2 session as the protocol documents it (node:crypto here, to check digest.ts's too). */
function session(serverNonce: string, cookie = COOKIE, clientNonce = randomBytes(32).toString('base64')) {
  const key = hmac(cookie, `noderel-session:${clientNonce}:${serverNonce}`);
  return {
    key,
    /** The client's first line for `command` (without its newline). */
    request(command: string, args: unknown[] = []): string {
      const msg = JSON.stringify({ command, args });
      return JSON.stringify({ nonce: clientNonce, msg, mac: hmac(key, `noderel-c2s:0:${msg}`).toString('base64') });
    },
    /** A stream frame as the protocol documents it: length, payload, HMAC(K, "<dir>:<seq>:" + payload). */
    frame(payload: string | Buffer, seq: number, dir: 'c2s' | 's2c' = 'c2s'): Buffer {
      const body = Buffer.from(payload);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(body.length);
      const mac = createHmac('sha256', key).update(`noderel-${dir}:${seq}:`).update(body).digest();
      return Buffer.concat([head, body, mac]);
    },
    /** The payloads of the complete frames in `bytes` from the node, each MAC checked; and what is left. */
    unframe(bytes: Buffer, firstSeq = 1): { payloads: string[]; rest: Buffer } {
      const payloads: string[] = [];
      let off = 0;
      let seq = firstSeq;
      while (bytes.length - off >= 4) {
        const n = bytes.readUInt32BE(off);
        if (bytes.length - off < 4 + n + 32) break;
        const body = bytes.subarray(off + 4, off + 4 + n);
        const mac = createHmac('sha256', key).update(`noderel-s2c:${seq++}:`).update(body).digest();
        expect(bytes.subarray(off + 4 + n, off + 4 + n + 32).equals(mac)).toBe(true);
        payloads.push(body.toString('utf8'));
        off += 4 + n + 32;
      }
      return { payloads, rest: bytes.subarray(off) };
    },
    /** The node's answer, after checking its MAC. */
    open(line: string): unknown {
      const sealed = JSON.parse(line) as { msg: string; mac: string };
      expect(sealed.mac).toBe(hmac(key, `noderel-s2c:0:${sealed.msg}`).toString('base64'));
      return JSON.parse(sealed.msg);
    },
  };
}

/** The hello line's server nonce. */
async function helloOf(c: { nextLine(): Promise<string> }): Promise<string> {
  const hello = JSON.parse(await c.nextLine()) as { v: number; nonce: string };
  expect(hello.v).toBe(2);
  return hello.nonce;
}

/** Reads data from `socket` until `predicate(text so far)` holds. */
function readUntil(socket: net.Socket, predicate: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(text)}`)), 5_000);
    socket.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      if (predicate(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
  });
}

/** A Unix socket file nobody listens on: a child binds it and is killed before it can clean up. */
function makeStaleSocket(p: string): void {
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
  const script = `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', script], { stdio: 'ignore' });
  expect(fs.lstatSync(p).isSocket()).toBe(true);
}


/** What the control client writes (it answers with fs.writeSync), captured instead of printed. */
function captureWrites(): { stderr: string[]; write: { mockRestore(): void } } {
  const stderr: string[] = [];
  net_.writes = stderr;
  return { stderr, write: { mockRestore: () => (net_.writes = undefined) } };
}

describe('requests', () => {
  it('answers a request with its result', async () => {
    await start();
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' })).resolves.toBe('pong');
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'echo', args: [1, 'two', { three: 3 }] })).resolves.toEqual({
      args: [1, 'two', { three: 3 }],
    });
  });

  it('waits for an async handler; undefined comes back as null', async () => {
    await start();
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'slow', args: [100] })).resolves.toEqual({ waited: 100 });
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'nothing' })).resolves.toBeNull();
  });

  it('a handler that throws: ECOMMAND with its message', async () => {
    await start();
    const err = await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'fail' }), 'ECOMMAND');
    expect(err.message).toBe('the app said no');
  });

  it('an unknown command: EUNKNOWN listing the known ones', async () => {
    await start();
    const err = await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'toString' }), 'EUNKNOWN');
    expect(err.message).toBe('unknown command toString; known: echo, echo_stream, fail, hang, late_stream, nothing, ping, pipe_stream, slow');
  });

  it('answers 50 concurrent requests, each with its own result', async () => {
    await start();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'echo', args: [i] })),
    );
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => ({ args: [i] })));
  });

  it('the client gives up after timeoutMs: ETIMEOUT', async () => {
    await start();
    const err = await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'hang', timeoutMs: 200 }), 'ETIMEOUT');
    expect(err.message).toContain('within 200 ms');
  });

  it('a stream command asked as a request (and the reverse) is EPROTO', async () => {
    await start();
    await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'echo_stream' }), 'EPROTO');
    await controlFailure(controlStream({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' }), 'EPROTO');
  });
});

describe('authentication', () => {
  it('refuses a wrong cookie (EAUTH), runs nothing, and reports it through onAuthFailure', async () => {
    const failures: string[] = [];
    let ran = false;
    await start({
      onAuthFailure: (info) => failures.push(info),
      requests: {
        ping: () => {
          ran = true;
          return 'pong';
        },
      },
    });
    const err = await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: 'wrong', command: 'ping' }), 'EAUTH');
    expect(err.message).toBe('wrong cookie');
    expect(ran).toBe(false);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain('wrong cookie');
    expect(failures[0]).toContain('"ping"');
    // an unknown command with a wrong cookie is still EAUTH: nothing is told before authentication
    await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: 'wrong', command: 'nope' }), 'EAUTH');
  });

  it('speaks the documented wire protocol: both ends prove the cookie, the answer is MAC\'d', async () => {
    await start();
    const c = rawClient();
    const hello = JSON.parse(await c.nextLine()) as { v: number; nonce: string };
    expect(hello.v).toBe(2);
    expect(Buffer.from(hello.nonce, 'base64')).toHaveLength(32);
    const s = session(hello.nonce);
    c.socket.write(s.request('echo', ['x']) + '\n');
    expect(s.open(await c.nextLine())).toEqual({ ok: true, result: { args: ['x'] } });
    await c.closed;
  });

  it('a fresh nonce every connection; a replayed request is refused', async () => {
    await start();
    const a = rawClient();
    const first = await helloOf(a);
    const s = session(first);
    const answer = s.request('ping') + '\n';
    a.socket.write(answer);
    expect(s.open(await a.nextLine())).toEqual({ ok: true, result: 'pong' });
    const b = rawClient();
    const second = await helloOf(b);
    expect(second).not.toBe(first);
    b.socket.write(answer);
    expect(JSON.parse(await b.nextLine())).toEqual({ ok: false, code: 'EAUTH', error: 'wrong cookie' });
  });

  it('a mac of the wrong length, or none, is a wrong cookie', async () => {
    const failures: string[] = [];
    await start({ onAuthFailure: (info) => failures.push(info), guard: { baseDelayMs: 1, logWindowMs: 200 } });
    for (const mac of ['c2hvcnQ=', undefined, 42]) {
      const c = rawClient();
      const nonce = await helloOf(c);
      const good = JSON.parse(session(nonce).request('ping')) as Record<string, unknown>;
      c.socket.write(JSON.stringify({ ...good, mac }) + '\n');
      expect(JSON.parse(await c.nextLine())).toEqual({ ok: false, code: 'EAUTH', error: 'wrong cookie' });
      await c.closed;
    }
    // the first in full, the other two in the window's summary line
    await new Promise((r) => setTimeout(r, 300));
    expect(failures).toHaveLength(2);
    expect(failures[1]).toMatch(/^refused 2 more control connections .*wrong cookie: 2/);
  });

  it('a first line that is not JSON, or too long, is EPROTO and reported', async () => {
    const failures: string[] = [];
    await start({ onAuthFailure: (info) => failures.push(info), guard: { baseDelayMs: 1, logWindowMs: 50 } });
    const junk = rawClient();
    await junk.nextLine();
    junk.socket.write('GET / HTTP/1.1\n');
    expect(JSON.parse(await junk.nextLine())).toMatchObject({ ok: false, code: 'EPROTO' });
    const big = rawClient();
    await big.nextLine();
    big.socket.write('x'.repeat(200 * 1024));
    expect(JSON.parse(await big.nextLine())).toMatchObject({ ok: false, code: 'EPROTO' });
    await big.closed;
    await new Promise((r) => setTimeout(r, 100));
    expect(failures).toHaveLength(2);
    expect(failures[0]).toContain('malformed first line');
    expect(failures[1]).toMatch(/^refused 1 more control connections .*oversized: 1/);
  });

  it('drops a client that never answers the challenge after authTimeoutMs', async () => {
    await start({ authTimeoutMs: 200 });
    const c = rawClient();
    await c.nextLine(); // the challenge
    expect(JSON.parse(await c.nextLine())).toMatchObject({ ok: false, code: 'ETIMEOUT' });
    await c.closed;
    // the server is still fine
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' })).resolves.toBe('pong');
  });
});

describe('streams', () => {
  /** The text of the node's frames so far (each MAC checked), once `want` is in it. */
  const framesUntil = async (c: ReturnType<typeof rawClient>, s: ReturnType<typeof session>, want: string): Promise<string> => {
    const bytes = await c.waitRest((b) => s.unframe(b).payloads.join('').includes(want));
    return s.unframe(bytes).payloads.join('');
  };

  it('hands the stream over in MAC\'d frames, keeping the frames sent right after the answer line', async () => {
    await start();
    const c = rawClient();
    const s = session(await helloOf(c));
    // the answer line and the first stream frame in one write: none of it may be lost
    c.socket.write(Buffer.concat([Buffer.from(s.request('echo_stream') + '\n'), s.frame('early bytes|', 1)]));
    expect(s.open(await c.nextLine())).toEqual({ ok: true, stream: true });
    c.socket.write(s.frame('later\n', 2));
    expect(await framesUntil(c, s, 'later')).toBe('welcome\nearly bytes|later\n');
  });

  it('works the same for a handler that pipe()s the stream', async () => {
    await start();
    const c = rawClient();
    const s = session(await helloOf(c));
    c.socket.write(Buffer.concat([Buffer.from(s.request('pipe_stream') + '\n'), s.frame('first|', 1)]));
    expect(s.open(await c.nextLine())).toEqual({ ok: true, stream: true });
    c.socket.write(s.frame('second\n', 2));
    expect(await framesUntil(c, s, 'second')).toBe('first|second\n');
  });

  it('keeps the early frames for a handler that starts reading later', async () => {
    await start();
    const c = rawClient();
    const s = session(await helloOf(c));
    c.socket.write(Buffer.concat([Buffer.from(s.request('late_stream') + '\n'), s.frame('early|', 1)]));
    expect(s.open(await c.nextLine())).toEqual({ ok: true, stream: true });
    c.socket.write(s.frame('more\n', 2));
    expect(await framesUntil(c, s, 'more')).toBe('early|more\n');
  });

  it('a frame that fails its MAC (altered, out of order, replayed, or under another key) ends the stream; nothing of it reaches the handler', async () => {
    const got: string[] = [];
    await start({ streams: { record: (stream) => stream.on('data', (d: Buffer) => got.push(String(d))) } });
    const attempts: Array<(s: ReturnType<typeof session>) => Buffer> = [
      (s) => {
        const f = s.frame('rm -rf /\n', 2); // a byte flipped on the way
        f[6] = f[6]! ^ 1;
        return f;
      },
      (s) => s.frame('out of order\n', 3), // frame 2 skipped
      (s) => s.frame('ok\n', 1), // frame 1 again: a replay
      (s) => s.frame('hello from the s2c direction\n', 2, 's2c'), // reflected
      () => session('another nonce').frame('other session\n', 2), // another session's key
    ];
    for (const forge of attempts) {
      got.length = 0;
      const c = rawClient();
      const s = session(await helloOf(c));
      c.socket.write(Buffer.concat([Buffer.from(s.request('record') + '\n'), s.frame('ok\n', 1)]));
      expect(s.open(await c.nextLine())).toEqual({ ok: true, stream: true });
      await waitFor(() => got.join('') === 'ok\n', 'the first frame');
      c.socket.write(Buffer.concat([forge(s), s.frame('after\n', 2)]));
      await c.closed; // the node hangs up
      expect(got).toEqual(['ok\n']);
    }
  });

  it('controlStream resolves with the socket; bytes the node sent after its ack come first', async () => {
    await start();
    const socket = await controlStream({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'echo_stream', args: ['tty'] });
    sockets.push(socket);
    const got = readUntil(socket, (t) => t.includes('ping!'));
    socket.write('ping!');
    expect(await got).toBe('welcome\nping!');
  });

  it('controlStream with a wrong cookie is EAUTH', async () => {
    await start();
    await controlFailure(controlStream({ endpoint: { path: socketPath }, cookie: 'nope', command: 'echo_stream' }), 'EAUTH');
  });
});

describe('the socket file and its directory', () => {
  it('socket 0600 in a 0700 directory it created', async () => {
    await start();
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o700);
  });

  it('tightens an existing looser directory of its own to 0700', async () => {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true });
    fs.chmodSync(path.dirname(socketPath), 0o755);
    await start();
    expect(fs.statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o700);
  });

  it('refuses a shared (sticky, world-writable) directory instead of chmod-ing it', async () => {
    const shared = path.join(tmp, 'shared');
    fs.mkdirSync(shared);
    fs.chmodSync(shared, 0o1777);
    socketPath = path.join(shared, 'control.sock');
    const err = await startControlServer({ socketPath, cookie: COOKIE, requests: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootError);
    expect((err as BootError).message).toContain(`${shared} is a shared directory (mode 1777)`);
    expect(fs.statSync(shared).mode & 0o7777).toBe(0o1777);
  });

  it('replaces a stale socket file left by a dead node', async () => {
    makeStaleSocket(socketPath);
    await start();
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' })).resolves.toBe('pong');
  });

  it('never takes over a socket that still answers (a second node on the same path)', async () => {
    await start();
    const err = await startControlServer({ socketPath, cookie: COOKIE, requests: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootError);
    expect((err as BootError).message).toBe(`another process is listening on the control socket ${socketPath}; is this node already running?`);
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' })).resolves.toBe('pong');
  });

  it('leaves a file that is not a socket alone, and says so', async () => {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    fs.writeFileSync(socketPath, 'precious');
    const err = await start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootError);
    expect((err as BootError).message).toBe(`${socketPath} exists and is not a socket; move it away or set RELEASE_TMP elsewhere`);
    expect(fs.readFileSync(socketPath, 'utf8')).toBe('precious');
  });

  it('close() removes the socket file, ends open streams, and then nothing is running', async () => {
    const server = await start();
    const stream = await controlStream({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'echo_stream' });
    sockets.push(stream);
    stream.on('error', () => {});
    stream.resume();
    const ended = new Promise<void>((r) => stream.on('close', () => r()));
    await server.close();
    await ended;
    expect(fs.existsSync(socketPath)).toBe(false);
    await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' }), 'ENOTRUNNING');
    await server.close(); // twice is fine
  });

  it('too long a socket path: a BootError naming it and RELEASE_TMP, from server and client', async () => {
    const long = path.join(tmp, 'x'.repeat(120), 'control.sock');
    for (const p of [startControlServer({ socketPath: long, cookie: COOKIE, requests: {} }), controlRequest({ endpoint: { path: long }, cookie: COOKIE, command: 'ping' })]) {
      const err = await p.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BootError);
      expect((err as BootError).code).toBe('ESOCKET');
      expect((err as BootError).message).toContain(long);
      expect((err as BootError).message).toContain('RELEASE_TMP');
    }
  });
});

describe('no node running', () => {
  it('no socket file: ENOTRUNNING', async () => {
    const err = await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' }), 'ENOTRUNNING');
    expect(err.message).toBe(`no node is listening on ${socketPath}`);
  });

  it('a stale socket file: ENOTRUNNING', async () => {
    makeStaleSocket(socketPath);
    await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' }), 'ENOTRUNNING');
    await controlFailure(controlStream({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'attach' }), 'ENOTRUNNING');
  });
});

describe('a control command while a USR2 hand-over moves the socket', () => {
  const clientEnv = (runDir: string): NodeJS.ProcessEnv => ({
    NODEREL_ROOT: tmp,
    NODEREL_REL_NAME: 'ops',
    NODEREL_REL_VSN: '1.0.0',
    NODEREL_NODE_TYPE: 'web',
    NODEREL_NODE_NAME: 'web@h',
    NODEREL_RUN_DIR: runDir,
    OPS_COOKIE: COOKIE,
  });
  const runDirWithPid = (pid: number): string => {
    const runDir = path.join(tmp, 'run', 'web@h');
    fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(runDir, 'node.pid'), `${pid}\n`);
    return runDir;
  };

  it('waits while the socket is missing but the pid file names a live node, then gets its answer', async () => {
    const runDir = runDirWithPid(process.pid);
    const appear = setTimeout(() => {
      void startControlServer({ socketPath: path.join(runDir, 'ctl'), cookie: COOKIE, requests: { ping: () => 'pong' } }).then((s) => servers.push(s));
    }, 300);
    const started = Date.now();
    try {
      expect(await runClient('ping', [], clientEnv(runDir))).toBe(0);
    } finally {
      clearTimeout(appear);
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('says not running at once when the pid file names no live process', async () => {
    const gone = spawnSync('true').pid!;
    const runDir = runDirWithPid(gone);
    net_.connects = 0;
    expect(await runClient('ping', [], clientEnv(runDir))).toBe(1);
    expect(net_.connects).toBe(1); // tried once: no hand-over wait for a node that is not there
  });
});

describe('the TCP control port', () => {
  it('the same protocol on a TCP port: requests and streams with the cookie, a wrong one refused and reported with the peer', async () => {
    const failures: string[] = [];
    const tcp = await startControlTcpServer({
      host: '127.0.0.1',
      port: 0,
      cookie: COOKIE,
      requests: { ping: () => 'pong', echo: (args) => ({ args }) },
      streams: { echo_stream: (socket) => socket.pipe(socket) },
      onAuthFailure: (info) => failures.push(info),
    });
    try {
      expect(tcp.host).toBe('127.0.0.1');
      expect(tcp.port).toBeGreaterThan(0);
      const endpoint = { host: '127.0.0.1', port: tcp.port };
      await expect(controlRequest({ endpoint, cookie: COOKIE, command: 'echo', args: ['over tcp'] })).resolves.toEqual({ args: ['over tcp'] });
      const stream = await controlStream({ endpoint, cookie: COOKIE, command: 'echo_stream' });
      sockets.push(stream);
      stream.write('round trip\n');
      await new Promise<void>((resolve) => stream.once('data', (d) => (expect(String(d)).toBe('round trip\n'), resolve())));
      const err = await controlFailure(controlRequest({ endpoint, cookie: 'wrong', command: 'ping' }), 'EAUTH');
      expect(err.message).toBe('wrong cookie');
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatch(new RegExp(`from 127\\.0\\.0\\.1:\\d+ on 127\\.0\\.0\\.1:${tcp.port} `));
    } finally {
      await tcp.close();
    }
    const gone = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port: tcp.port }, cookie: COOKIE, command: 'ping' }), 'ENOTRUNNING');
    expect(gone.message).toBe(`no node is listening on 127.0.0.1:${tcp.port}`);
  });

  it('a port in use: a BootError naming the control port', async () => {
    const first = await startControlTcpServer({ host: '127.0.0.1', port: 0, cookie: COOKIE, requests: {} });
    try {
      const err = await startControlTcpServer({ host: '127.0.0.1', port: first.port, cookie: COOKIE, requests: {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BootError);
      expect((err as BootError).message).toMatch(new RegExp(`^cannot listen on the control port 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE`));
    } finally {
      await first.close();
    }
  });

  it('parseHostPort: PORT (on 127.0.0.1), HOST:PORT, [IPv6]:PORT; anything else names the setting and the forms', () => {
    expect(parseHostPort('4370', 'X')).toEqual({ host: '127.0.0.1', port: 4370 });
    expect(parseHostPort('0.0.0.0:4370', 'X')).toEqual({ host: '0.0.0.0', port: 4370 });
    expect(parseHostPort('node1.example:4370', 'X')).toEqual({ host: 'node1.example', port: 4370 });
    expect(parseHostPort('[::1]:4370', 'X')).toEqual({ host: '::1', port: 4370 });
    for (const bad of ['', 'abc', '4370x', ':4370', 'host:', 'host:0', 'host:65536', '::1:4370', 'a b:1']) {
      const err = (() => {
        try {
          parseHostPort(bad, 'NODEREL_CONTROL_PORT');
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, bad).toBeInstanceOf(BootError);
      expect((err as BootError).message).toBe(`NODEREL_CONTROL_PORT is ${JSON.stringify(bad)}: expected PORT, HOST:PORT or [IPv6]:PORT, with a port from 1 to 65535`);
    }
  });
});

/** A relay with no cookie between a client and the node (TCP in front of the node's socket). */
async function startRelay(
  nodePath: string,
  tamper: (firstLine: string) => string,
): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const open = new Set<net.Socket>();
  const relay = net.createServer((victim) => {
    const node = net.connect(nodePath);
    open.add(victim).add(node);
    victim.on('error', () => node.destroy());
    node.on('error', () => victim.destroy());
    node.pipe(victim); // the greeting and the answers, untouched
    let buf = '';
    let forwarded = false;
    victim.on('data', (d: Buffer) => {
      if (forwarded) return void node.write(d);
      buf = (buf + d.toString('utf8')).replace(/^\n+/, ''); // a plain TCP client's blank preamble
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      forwarded = true;
      seen.push(buf.slice(0, nl));
      node.write(tamper(buf.slice(0, nl)) + buf.slice(nl));
    });
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    port: (relay.address() as net.AddressInfo).port,
    seen,
    close: () => {
      for (const sk of open) sk.destroy();
      return new Promise<void>((r) => relay.close(() => r()));
    },
  };
}

describe('a relay without the cookie (issue 10, item 11)', () => {
  const EVIL = 'require("child_process").execSync("id").toString()';
  let evals: unknown[];
  const startNode = (failures: string[] = []) =>
    start({
      onAuthFailure: (info) => failures.push(info),
      guard: { baseDelayMs: 1 },
      requests: {
        ping: () => 'pong',
        status: () => ({ stage: 'running' }),
        eval: (args) => {
          evals.push(args);
          return 'evaluated';
        },
      },
    });
  beforeEach(() => {
    evals = [];
  });

  it('cannot swap the victim\'s ping for an eval: the node refuses it and runs nothing', async () => {
    const failures: string[] = [];
    await startNode(failures);
    const relay = await startRelay(socketPath, (line) => {
      const req = JSON.parse(line) as Record<string, unknown>;
      return JSON.stringify({ ...req, msg: JSON.stringify({ command: 'eval', args: [EVIL] }) });
    });
    try {
      const err = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port: relay.port }, cookie: COOKIE, command: 'ping' }), 'EAUTH');
      expect(err.message).toBe('wrong cookie');
      expect(evals).toEqual([]);
      expect(failures[0]).toContain('(command "eval")');
      expect(relay.seen).toHaveLength(1);
    } finally {
      await relay.close();
    }
  });

  it('the victim\'s `ping --remote` through the relay: refused, never pong, nothing evaluated', async () => {
    await startNode();
    const relay = await startRelay(socketPath, (line) => {
      const req = JSON.parse(line) as Record<string, unknown>;
      return JSON.stringify({ ...req, msg: JSON.stringify({ command: 'eval', args: [EVIL] }) });
    });
    const { stderr, write } = captureWrites();
    try {
      const code = await runClient('ping', ['--remote', `127.0.0.1:${relay.port}`], { NODEREL_ROOT: tmp, NODEREL_REL_NAME: 'ops', NODEREL_REL_VSN: '1.0.0', NODEREL_NODE_TYPE: 'web', NODEREL_NODE_NAME: 'web@h', OPS_COOKIE: COOKIE });
      expect(code).toBe(1);
      expect(stderr.join('')).not.toContain('pong');
      expect(evals).toEqual([]);
    } finally {
      write.mockRestore();
      await relay.close();
    }
  });

  it('cannot inject a second request after the victim\'s, nor replay the victim\'s request in a new session', async () => {
    await startNode();
    const injected: string[] = [];
    const relay = await startRelay(socketPath, (line) => {
      const req = JSON.parse(line) as Record<string, unknown>;
      injected.push(line);
      // the victim's line untouched, then an eval riding on its MAC
      return line + '\n' + JSON.stringify({ ...req, msg: JSON.stringify({ command: 'eval', args: [EVIL] }) });
    });
    try {
      await expect(controlRequest({ endpoint: { host: '127.0.0.1', port: relay.port }, cookie: COOKIE, command: 'ping' })).resolves.toBe('pong');
    } finally {
      await relay.close();
    }
    // replay: the victim's recorded request, in a session of the relay's own
    const c = rawClient();
    await helloOf(c);
    c.socket.write(injected[0] + '\n');
    expect(JSON.parse(await c.nextLine())).toEqual({ ok: false, code: 'EAUTH', error: 'wrong cookie' });
    await new Promise((r) => setTimeout(r, 100));
    expect(evals).toEqual([]);
  });

  it('the client trusts no answer the node did not MAC for its session: forged, or swapped between sessions', async () => {
    await startNode();
    // a fake node: a greeting, then a plain success
    const fake = net.createServer((sk) => {
      sk.on('error', () => {});
      sk.write(JSON.stringify({ v: 2, nonce: randomBytes(32).toString('base64') }) + '\n');
      // once the request came (past the blank lines a plain TCP client opens with)
      const onData = (d: Buffer): void => {
        if (String(d).trim() === '') return;
        sk.off('data', onData);
        sk.write(JSON.stringify({ ok: true, result: 'pong' }) + '\n');
      };
      sk.on('data', onData);
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const port = (fake.address() as net.AddressInfo).port;
      const err = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port }, cookie: COOKIE, command: 'eval', args: ['1'] }), 'EAUTH');
      expect(err.message).toMatch(/without proving the cookie/);
    } finally {
      await new Promise<void>((r) => fake.close(() => r()));
    }
    // a relay that answers the victim's status with a sealed answer from another session (reorder)
    const other = rawClient();
    const s = session(await helloOf(other));
    other.socket.write(s.request('ping') + '\n');
    const stolen = await other.nextLine();
    const swapper = net.createServer((victim) => {
      victim.on('error', () => {});
      const node = net.connect(socketPath);
      node.on('error', () => {});
      node.once('data', (hello) => victim.write(hello));
      const onData = (d: Buffer): void => {
        if (String(d).trim() === '') return;
        victim.off('data', onData);
        victim.write(stolen + '\n');
        node.destroy();
      };
      victim.on('data', onData);
    });
    await new Promise<void>((r) => swapper.listen(0, '127.0.0.1', r));
    try {
      const port = (swapper.address() as net.AddressInfo).port;
      const err = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port }, cookie: COOKIE, command: 'status' }), 'EAUTH');
      expect(err.message).toMatch(/does not prove the cookie/);
    } finally {
      await new Promise<void>((r) => swapper.close(() => r()));
    }
    expect(evals).toEqual([]);
  });
});


describe('a relay on an attach or remote_console stream (issue 10, item 11)', () => {
  /** A TCP relay to the node's socket: the handshake passes untouched, then `onStream` gets the node's stream bytes. */
  async function streamRelay(onStream: (d: Buffer, victim: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
    const open = new Set<net.Socket>();
    const relay = net.createServer((victim) => {
      const node = net.connect(socketPath);
      open.add(victim).add(node);
      victim.on('error', () => node.destroy());
      node.on('error', () => victim.destroy());
      victim.on('close', () => node.destroy());
      victim.pipe(node);
      let lines = 0; // the greeting and the ack, then frames
      node.on('data', (d: Buffer) => {
        let off = 0;
        while (lines < 2 && off < d.length) if (d[off++] === 10) lines++;
        if (off > 0) victim.write(d.subarray(0, off));
        if (off < d.length) onStream(d.subarray(off), victim);
      });
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    return {
      port: (relay.address() as net.AddressInfo).port,
      close: () => {
        for (const sk of open) sk.destroy();
        return new Promise<void>((r) => relay.close(() => r()));
      },
    };
  }

  /** Everything a client stream gave: data, and how it ended. */
  async function drain(stream: Awaited<ReturnType<typeof controlStream>>): Promise<{ data: string; error?: string }> {
    let data = '';
    stream.on('data', (d: Buffer) => (data += String(d)));
    if (!stream.closed) await new Promise<void>((r) => stream.on('close', () => r()));
    const error = stream.errored?.message;
    return { data, ...(error === undefined ? {} : { error }) };
  }

  it('a byte changed in the node\'s output: the client fails the stream and shows nothing of it', async () => {
    await start();
    const relay = await streamRelay((d, victim) => {
      const copy = Buffer.from(d);
      copy[copy.length - 1] = copy[copy.length - 1]! ^ 0x20;
      victim.write(copy);
    });
    try {
      const stream = await controlStream({ endpoint: { host: '127.0.0.1', port: relay.port }, cookie: COOKIE, command: 'echo_stream' });
      const r = await drain(stream);
      expect(r.data).toBe('');
      expect(r.error).toMatch(/^the stream from 127\.0\.0\.1:\d+ was refused: frame 1 failed its MAC/);
    } finally {
      await relay.close();
    }
  });

  it('a stream cut on the way is an error, not an end; the node\'s own end is an end', async () => {
    await start({ streams: { echo_stream: (stream) => stream.write('welcome\n'), bye: (stream) => stream.end('bye\n') } });
    const relay = await streamRelay((d, victim) => {
      victim.write(d.subarray(0, 4 + 'welcome\n'.length + 32)); // the first frame, then the wire goes dead
      victim.destroy();
    });
    try {
      const cut = await drain(await controlStream({ endpoint: { host: '127.0.0.1', port: relay.port }, cookie: COOKIE, command: 'echo_stream' }));
      expect(cut.data).toBe('welcome\n');
      expect(cut.error).toMatch(/was cut before the stream's authenticated end/);
      const clean = await drain(await controlStream({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'bye' }));
      expect(clean).toEqual({ data: 'bye\n' });
    } finally {
      await relay.close();
    }
  });
});

describe('guessing the cookie (issue 10, item 12)', () => {
  const wrong = () => controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: 'guess', command: 'ping' }), 'EAUTH');
  const timed = async (f: () => Promise<unknown>): Promise<number> => {
    const t0 = Date.now();
    await f();
    return Date.now() - t0;
  };

  it('each failure from a source makes its next refusal wait longer; the right cookie is not slowed, and resets it', async () => {
    const delays: number[] = [];
    await start({ guard: { baseDelayMs: 40, maxDelayMs: 2_000, onDelay: (_source, ms) => delays.push(ms) } });
    const times: number[] = [];
    for (let i = 0; i < 6; i++) times.push(await timed(wrong));
    expect(delays).toEqual([40, 80, 160, 320, 640, 1280]);
    // and the refusal really waited (a lower bound: safe on a loaded machine)
    expect(times[5]).toBeGreaterThanOrEqual(1_200);
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' })).resolves.toBe('pong');
    expect(delays).toHaveLength(6); // the right cookie is never delayed
    await wrong();
    expect(delays.at(-1)).toBe(40); // its success forgot the failures
  }, 30_000);

  it('caps unauthenticated connections per source: beyond it, EBUSY at once; a slot freed serves again', async () => {
    await start({ guard: { maxPendingPerSource: 3 } });
    const silent = [rawClient(), rawClient(), rawClient()];
    for (const c of silent) await helloOf(c);
    const over = rawClient();
    expect(JSON.parse(await over.nextLine())).toMatchObject({ ok: false, code: 'EBUSY' });
    await over.closed;
    await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' }), 'EBUSY');
    silent[0]!.socket.destroy();
    await silent[0]!.closed;
    await new Promise((r) => setTimeout(r, 50));
    await expect(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' })).resolves.toBe('pong');
  });

  it('logs the first refusal of a window in full and the rest in one summary line', async () => {
    const failures: string[] = [];
    await start({ onAuthFailure: (info) => failures.push(info), guard: { baseDelayMs: 0, logWindowMs: 500 } });
    await Promise.all(Array.from({ length: 40 }, () => wrong()));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/^refused a control connection: wrong cookie from a local process/);
    await new Promise((r) => setTimeout(r, 700));
    expect(failures).toHaveLength(2);
    expect(failures[1]).toMatch(/^refused 39 more control connections in the last 0\.5 s \(wrong cookie: 39\) from local processes \(39\)$/);
  });
});

describe('the client says what happened (issue 10, item 14)', () => {
  it('a socket that refuses us for permissions (EACCES) is not blamed on the cookie', async () => {
    await start();
    const eacces = () => Object.assign(new Error(`connect EACCES ${socketPath}`), { code: 'EACCES' });
    const { stderr, write } = captureWrites();
    try {
      net_.connectFault = eacces();
      const err = await controlFailure(controlRequest({ endpoint: { path: socketPath }, cookie: COOKIE, command: 'ping' }), 'EACCES');
      expect(err.message).toMatch(/permission denied connecting to .*control\.sock \(EACCES\).*run the command as that user/);
      const runDir = path.dirname(socketPath);
      fs.writeFileSync(path.join(runDir, 'node.pid'), `${process.pid}\n`);
      net_.connectFault = eacces();
      expect(await runClient('ping', [], { NODEREL_ROOT: tmp, NODEREL_REL_NAME: 'ops', NODEREL_REL_VSN: '1.0.0', NODEREL_NODE_TYPE: 'web', NODEREL_NODE_NAME: 'web@h', NODEREL_RUN_DIR: runDir, OPS_COOKIE: COOKIE })).toBe(1);
    } finally {
      write.mockRestore();
      net_.connectFault = undefined;
    }
    expect(stderr.join('')).toMatch(/permission denied/);
    expect(stderr.join('')).not.toMatch(/cookie/i);
  });

  it('a first line over 64 KiB is refused even when it arrives in one read, and runs nothing', async () => {
    let ran = false;
    await start({ requests: { echo: () => ((ran = true), 'ran') }, guard: { baseDelayMs: 1 } });
    const c = rawClient();
    const s = session(await helloOf(c));
    c.socket.write(s.request('echo', ['x'.repeat(100 * 1000)]) + '\n');
    expect(JSON.parse(await c.nextLine())).toMatchObject({ ok: false, code: 'EPROTO', error: expect.stringMatching(/longer than 65536 bytes/) });
    expect(ran).toBe(false);
  });
});

describe('TLS on the TCP control port (issue 10, item 13)', () => {
  /** A TCP relay that records every byte both ways (what an eavesdropper on the wire sees). */
  async function tap(port: number): Promise<{ port: number; wire: () => string; close(): Promise<void> }> {
    const chunks: Buffer[] = [];
    const open = new Set<net.Socket>();
    const relay = net.createServer((client) => {
      const node = net.connect(port, '127.0.0.1');
      open.add(client).add(node);
      client.on('error', () => node.destroy());
      node.on('error', () => client.destroy());
      client.on('data', (d: Buffer) => (chunks.push(d), node.write(d)));
      node.on('data', (d: Buffer) => (chunks.push(d), client.write(d)));
      client.on('close', () => node.destroy());
      node.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    return {
      port: (relay.address() as net.AddressInfo).port,
      wire: () => Buffer.concat(chunks).toString('latin1'),
      close: () => {
        for (const sk of open) sk.destroy();
        return new Promise<void>((r) => relay.close(() => r()));
      },
    };
  }

  async function tlsNode(certFile: string, keyFile: string, failures: string[] = []) {
    const evals: unknown[] = [];
    const server = await startControlTcpServer({
      host: '127.0.0.1',
      port: 0,
      cookie: COOKIE,
      tls: loadTlsServerConfig(certFile, keyFile),
      requests: { ping: () => 'pong', eval: (args) => (evals.push(args[0]), 'evaluated') },
      streams: { echo_stream: (stream) => stream.pipe(stream) },
      onAuthFailure: (info) => failures.push(info),
    });
    servers.push(server);
    return { port: server.port, evals };
  }

  it('requests and streams through TLS; the wire carries nothing of them in clear', async () => {
    const ca = makeCa(path.join(tmp, 'ca'));
    const node = ca.issue('node', 'DNS:localhost,IP:127.0.0.1');
    const { port, evals } = await tlsNode(node.certFile, node.keyFile);
    const wire = await tap(port);
    try {
      const tls = loadTlsClientConfig(ca.caFile, undefined)!;
      const endpoint = { host: '127.0.0.1', port: wire.port };
      await expect(controlRequest({ endpoint, cookie: COOKIE, command: 'eval', args: ['"secret-expression"'], tls })).resolves.toBe('evaluated');
      expect(evals).toEqual(['"secret-expression"']);
      const stream = await controlStream({ endpoint, cookie: COOKIE, command: 'echo_stream', tls });
      sockets.push(stream);
      const back = readUntil(stream as net.Socket, (t) => t.includes('console-input'));
      stream.write('console-input');
      await back;
      await expect(controlRequest({ endpoint: { host: 'localhost', port: wire.port }, cookie: COOKIE, command: 'ping', tls })).resolves.toBe('pong');
      const seen = wire.wire();
      expect(seen.length).toBeGreaterThan(500); // handshakes and records went through the tap
      for (const clear of ['secret-expression', 'console-input', 'evaluated', 'pong', 'nonce', 'command']) expect(seen).not.toContain(clear);
    } finally {
      await wire.close();
    }
  });

  it('a node whose certificate the CA did not sign, or that names another host: ETLS, and nothing is sent to it', async () => {
    const ca = makeCa(path.join(tmp, 'ca'));
    const other = makeCa(path.join(tmp, 'other'), 'someone else');
    const impostor = other.issue('impostor', 'IP:127.0.0.1');
    const { port, evals } = await tlsNode(impostor.certFile, impostor.keyFile);
    const tls = loadTlsClientConfig(ca.caFile, undefined)!;
    const err = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port }, cookie: COOKIE, command: 'eval', args: ['1'], tls }), 'ETLS');
    expect(err.message).toMatch(new RegExp(`^the certificate of the node on 127\\.0\\.0\\.1:${port} is not trusted: .*; it must chain to ${ca.caFile.replace(/[.]/g, '\\.')} \\(NODEREL_CONTROL_TLS_CA\\)`));
    expect(evals).toEqual([]);

    const named = ca.issue('named', 'DNS:node.example');
    const n2 = await tlsNode(named.certFile, named.keyFile);
    const wrongName = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port: n2.port }, cookie: COOKIE, command: 'ping', tls }), 'ETLS');
    expect(wrongName.message).toMatch(/is not trusted: .*(IP|altnames).*or set NODEREL_CONTROL_TLS_SERVERNAME/);
    const byName = loadTlsClientConfig(ca.caFile, 'node.example')!;
    await expect(controlRequest({ endpoint: { host: '127.0.0.1', port: n2.port }, cookie: COOKIE, command: 'ping', tls: byName })).resolves.toBe('pong');
  });

  it('a client without TLS on a TLS port is told at once, and the node logs it; a TLS client on a plain port is told so', async () => {
    const ca = makeCa(path.join(tmp, 'ca'));
    const node = ca.issue('node', 'IP:127.0.0.1');
    const failures: string[] = [];
    const { port } = await tlsNode(node.certFile, node.keyFile, failures);
    // the node's handshake limit is 10 s: refused before it, on the client's own blank preamble
    const err = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port }, cookie: COOKIE, command: 'ping', timeoutMs: 8_000 }), 'ETLS');
    expect(err.message).toBe(`the node on 127.0.0.1:${port} closed the connection before its greeting: if its control port uses TLS, set NODEREL_CONTROL_TLS_CA to the CA file that signed its certificate`);
    await waitFor(() => failures.length === 1, 'the refusal in the log');
    expect(failures[0]).toMatch(new RegExp(`^refused a control connection from 127\\.0\\.0\\.1 on 127\\.0\\.0\\.1:${port}: not TLS`));

    const plain = await startControlTcpServer({ host: '127.0.0.1', port: 0, cookie: COOKIE, requests: { ping: () => 'pong' } });
    servers.push(plain);
    const tls = loadTlsClientConfig(ca.caFile, undefined)!;
    const e2 = await controlFailure(controlRequest({ endpoint: { host: '127.0.0.1', port: plain.port }, cookie: COOKIE, command: 'ping', tls }), 'ETLS');
    expect(e2.message).toMatch(new RegExp(`^the TLS handshake with 127\\.0\\.0\\.1:${plain.port} failed \\(.+\\): that control port does not speak TLS`));
  });

  it('the node\'s certificate and key: both or neither, readable, and a pair; the client\'s CA readable', () => {
    const ca = makeCa(path.join(tmp, 'ca'));
    const a = ca.issue('a', 'IP:127.0.0.1');
    const b = ca.issue('b', 'IP:127.0.0.1');
    expect(loadTlsServerConfig(undefined, undefined)).toBeUndefined();
    expect(() => loadTlsServerConfig(a.certFile, undefined)).toThrow(/^NODEREL_CONTROL_TLS_CERT is set but NODEREL_CONTROL_TLS_KEY is not/);
    expect(() => loadTlsServerConfig(undefined, a.keyFile)).toThrow(/^NODEREL_CONTROL_TLS_KEY is set but NODEREL_CONTROL_TLS_CERT is not/);
    expect(() => loadTlsServerConfig(a.certFile, b.keyFile)).toThrow(/^NODEREL_CONTROL_TLS_CERT \(.*a\.pem\) and NODEREL_CONTROL_TLS_KEY \(.*b\.key\) are not a usable pair: /);
    expect(() => loadTlsServerConfig(path.join(tmp, 'nope.pem'), a.keyFile)).toThrow(/^cannot read NODEREL_CONTROL_TLS_CERT \(.*nope\.pem\): ENOENT/);
    expect(() => loadTlsClientConfig(path.join(tmp, 'nope.pem'), undefined)).toThrow(/^cannot read NODEREL_CONTROL_TLS_CA \(.*nope\.pem\): ENOENT/);
    expect(loadTlsClientConfig(undefined, undefined)).toBeUndefined();
  });
});
