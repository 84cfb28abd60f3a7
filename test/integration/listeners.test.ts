/**
 * The listening sockets noderel holds for the apps (listeners.ts) with real sockets: which
 * listens are routed to a held socket, and that a held socket binds as `server.listen` would,
 * `ipv6Only` included. (Routing patches net.Server#listen: this file's process is its own.)
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bindListener, listenKey, routeListens, tcpListenArgs, type ListenAddress, type RawHandle } from '../../src/node/supervision/listeners.js';

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** Whether a TCP connection to host:port is accepted. */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host, port });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

function serveOn(handle: RawHandle): Promise<net.Server> {
  const server = net.createServer((s) => s.end());
  servers.push(server);
  return new Promise((resolve) => server.listen({ _handle: handle } as net.ListenOptions, () => resolve(server)));
}

describe('tcpListenArgs', () => {
  it('reads the TCP forms of listen, ipv6Only included; leaves pipes, handles, exclusive and reusePort listens alone', () => {
    const cb = () => {};
    expect(tcpListenArgs([8080, '127.0.0.1', 511, cb])).toEqual({ port: 8080, host: '127.0.0.1', ipv6Only: false, backlog: 511, callback: cb });
    expect(tcpListenArgs(['8080'])).toMatchObject({ port: 8080, host: '', ipv6Only: false });
    expect(tcpListenArgs([cb])).toMatchObject({ port: 0, host: '', callback: cb });
    expect(tcpListenArgs([{ port: 3000, host: '::', ipv6Only: true, backlog: 10 }])).toMatchObject({ port: 3000, host: '::', ipv6Only: true, backlog: 10 });
    for (const own of [{ port: 3000, exclusive: true }, { port: 3000, reusePort: true }, { path: '/tmp/x.sock' }, { fd: 3 }, { _handle: {} }]) {
      expect(tcpListenArgs([own]), JSON.stringify(own)).toBeUndefined();
    }
    expect(listenKey({ host: '', port: 80, ipv6Only: false })).toBe(':80');
    expect(listenKey({ host: '::', port: 80, ipv6Only: true })).toBe(':::80/ipv6only');
  });
});

describe('bindListener', () => {
  it('every address: IPv6 and IPv4 alike, unless ipv6Only', async () => {
    const dual = await serveOn(await bindListener({ host: '', port: 0, ipv6Only: false }));
    const dualPort = (dual.address() as net.AddressInfo).port;
    expect(await connects('::1', dualPort)).toBe(true);
    expect(await connects('127.0.0.1', dualPort)).toBe(true);

    const v6 = await serveOn(await bindListener({ host: '', port: 0, ipv6Only: true }));
    const v6Port = (v6.address() as net.AddressInfo).port;
    expect(await connects('::1', v6Port)).toBe(true);
    expect(await connects('127.0.0.1', v6Port)).toBe(false);
  });

  it('an address in use fails the bind itself, naming host:port as listen does (never a socket on a random port)', async () => {
    const first = await serveOn(await bindListener({ host: '127.0.0.1', port: 0, ipv6Only: false }));
    const port = (first.address() as net.AddressInfo).port;
    // libuv defers a bind's EADDRINUSE to listen; a process handed that socket would listen on
    // an unbound one and get a random port. bindListener finds it out first.
    const err = await bindListener({ host: '127.0.0.1', port, ipv6Only: false }).then(() => undefined, (e: NodeJS.ErrnoException) => e);
    expect(err?.code).toBe('EADDRINUSE');
    expect(err?.message).toBe(`listen EADDRINUSE: address already in use 127.0.0.1:${port}`);
  });
});

describe('routeListens', () => {
  it('routes a TCP listen, ipv6Only and all, to the held socket; exclusive and reusePort listens bind their own', async () => {
    const asked: ListenAddress[] = [];
    routeListens(async (a) => {
      asked.push(a);
      return bindListener(a);
    });
    const listen = (opts: net.ListenOptions) =>
      new Promise<net.Server>((resolve, reject) => {
        const s = net.createServer((c) => c.end());
        servers.push(s);
        s.once('error', reject);
        s.listen(opts, () => resolve(s));
      });
    const v6 = await listen({ port: 0, host: '::', ipv6Only: true });
    const port = (v6.address() as net.AddressInfo).port;
    expect(asked).toEqual([{ host: '::', port: 0, ipv6Only: true }]);
    expect(await connects('::1', port)).toBe(true);
    expect(await connects('127.0.0.1', port)).toBe(false);
    // IPv4 on the same port is free: the held socket is IPv6 only
    const v4 = await listen({ port, host: '127.0.0.1' });
    expect(await connects('127.0.0.1', port)).toBe(true);
    expect(asked).toHaveLength(2);
    // sockets of their own: not routed
    for (const own of [{ exclusive: true }, { reusePort: true }]) {
      const s = await listen({ port: 0, host: '127.0.0.1', ...own });
      expect(await connects('127.0.0.1', (s.address() as net.AddressInfo).port)).toBe(true);
    }
    expect(asked).toHaveLength(2);
    expect(v4.listening).toBe(true);
  });
});
