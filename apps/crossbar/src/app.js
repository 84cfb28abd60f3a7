// crossbar: the kazoo release's HTTP API (a noderel module app).
//
//   GET /        {"node": <node name>, "release": "kazoo", "version": <release version>, "uptime": <s>}
//   GET /health  200 "ok" while the node takes work, 503 "<stage>" after
//
// Every request counts as in-flight work, so a draining node finishes them before it stops.
// Once the node refuses new work (stages `rejecting` and `hanging-up`) requests get 503; once
// it leaves `running`, responses carry `Connection: close` and idle keep-alive connections are
// closed (ctx.drain), so clients move to the node's other workers without a failed request.
import http from 'node:http';

const DEFAULT_PORT = 8000;
const DEFAULT_IP = '0.0.0.0';

export async function start(ctx) {
  const { log, lifecycle, node } = ctx;
  const port = parsePort(process.env.CROSSBAR_PORT || ctx.config.port || DEFAULT_PORT);
  const ip = String(ctx.config.ip ?? DEFAULT_IP);

  // `stopping` still answers: a retiring worker serves the connections it has accepted.
  const takesWork = () => lifecycle.stage !== 'rejecting' && lifecycle.stage !== 'hanging-up';
  const reply = (res, status, type, body) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  const json = (res, status, value) => reply(res, status, 'application/json', `${JSON.stringify(value)}\n`);
  const text = (res, status, body) => reply(res, status, 'text/plain; charset=utf-8', `${body}\n`);

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET') return text(res, 405, 'method not allowed');
    if (url.pathname === '/health') return takesWork() ? text(res, 200, 'ok') : text(res, 503, lifecycle.stage);
    if (!takesWork()) return json(res, 503, { error: 'rejecting', stage: lifecycle.stage });
    const done = lifecycle.track();
    res.on('close', done);
    if (url.pathname === '/') {
      return json(res, 200, {
        node: node.name,
        release: node.release,
        version: node.version,
        uptime: Math.floor(process.uptime()),
      });
    }
    return json(res, 404, { error: 'not found', path: url.pathname });
  });

  const drain = ctx.drain(server);
  await listen(server, port, ip);
  log.info(`listening on ${ip}:${server.address().port}`);
  return { server, drain };
}

export async function stop(state) {
  await state.drain.close();
}

function parsePort(value) {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid port ${JSON.stringify(value)} (sys.config crossbar.port or CROSSBAR_PORT): expected 0-65535`);
  }
  return port;
}

function listen(server, port, host) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
