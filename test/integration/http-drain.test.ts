// http-drain.ts against a real node:http server and real keep-alive connections on 127.0.0.1:
// nothing is tracked while running; once the node drains, connections that were open before
// are found in the server's own list, answered with `Connection: close`, and an idle one is
// closed after the grace, not at once.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drainHttpServer } from '../../src/node/apps/http-drain.js';
import { Lifecycle } from '../../src/node/apps/lifecycle.js';
import { waitFor } from '../helpers/sandbox.js';

const servers: http.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

async function serve(handler: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** A raw keep-alive client: sends one request, resolves with the raw response head and body. */
function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    sockets.push(socket);
    socket.once('error', reject);
  });
}

function ask(socket: net.Socket, path = '/'): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (/\r\n\r\n[\s\S]*ok\n$/.test(got)) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

const closed = (socket: net.Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

describe('drainHttpServer', () => {
  it('running: keep-alive as usual; draining: an idle connection opened before closes after the grace, a new answer says Connection: close', async () => {
    const { server, port } = await serve((_req, res) => res.end('ok\n'));
    const lifecycle = new Lifecycle();
    drainHttpServer(server, lifecycle, { idleGraceMs: 300 });

    const idle = await connect(port);
    const busy = await connect(port);
    expect(await ask(idle)).toMatch(/Connection: keep-alive/i);
    expect(await ask(busy)).toMatch(/Connection: keep-alive/i);

    const drainedAt = Date.now();
    lifecycle.advance('draining');
    // The next answer on a connection from before the drain says close, and the client leaves.
    expect(await ask(busy)).toMatch(/Connection: close/i);
    await closed(busy);
    // The idle one is closed by the server, after the grace, not at once.
    await closed(idle);
    expect(Date.now() - drainedAt).toBeGreaterThanOrEqual(250);
    // ... and by the drain, not by the keep-alive timeout (5 s) its last answer armed
    expect(Date.now() - drainedAt).toBeLessThan(4000);
  });

  it('close(): stops accepting, lets an answer under way finish, and resolves once every connection is gone', async () => {
    let release: () => void = () => {};
    let arrived: () => void = () => {};
    const slowArrived = new Promise<void>((resolve) => (arrived = resolve));
    const { server, port } = await serve((req, res) => {
      if (req.url !== '/slow') return res.end('ok\n');
      release = () => res.end('ok\n');
      arrived();
    });
    const lifecycle = new Lifecycle();
    const drain = drainHttpServer(server, lifecycle, { idleGraceMs: 200 });
    const slow = await connect(port);
    const answer = ask(slow, '/slow');
    await slowArrived;
    let done = false;
    const closing = drain.close().then(() => (done = true));
    // New connections are refused once the server stops listening.
    await waitFor(() => !server.listening, 'the server to stop listening');
    await expect(connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // The slow answer is not cut short by the idle grace (200 ms): it is busy, not idle. (A
    // bounded wait: what is checked is that nothing happens in it.)
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(done).toBe(false);
    release();
    expect(await answer).toMatch(/Connection: close[\s\S]*ok\n$/i);
    await closing;
    expect(done).toBe(true);
  });
});
