// ecallmgr: the kazoo release's call manager (a noderel module app).
//
//   GET /call?duration=MS  a call that stays in flight for MS ms, then answers 200 "completed"
//   GET /health            200 "ok" while the node takes work, 503 "<stage>" after
//
// It follows the node's lifecycle stages: while draining it still takes calls; while rejecting
// new calls get 503 "rejecting" and held ones run to their end; on hanging-up every held call
// ends at once with 200 "hangup". Once the node leaves `running`, responses carry
// `Connection: close` and idle keep-alive connections are closed (ctx.drain), so clients move
// elsewhere without a failed request.
import http from 'node:http';

const DEFAULT_PORT = 8080;
const DEFAULT_IP = '0.0.0.0';
const MAX_DURATION_MS = 24 * 60 * 60 * 1000;

export async function start(ctx) {
  const { log, lifecycle } = ctx;
  const port = parsePort(process.env.ECALLMGR_PORT || ctx.config.port || DEFAULT_PORT);
  const ip = String(ctx.config.ip ?? DEFAULT_IP);
  /** id -> hang-up function of a call in flight */
  const calls = new Map();
  let nextId = 1;

  const takesWork = () => lifecycle.stage === 'running' || lifecycle.stage === 'draining';
  const reply = (res, status, body) => {
    const text = `${body}\n`;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET') return reply(res, 405, 'method not allowed');
    if (url.pathname === '/health') return takesWork() ? reply(res, 200, 'ok') : reply(res, 503, lifecycle.stage);
    if (url.pathname !== '/call') return reply(res, 404, 'not found');

    const duration = Number(url.searchParams.get('duration') ?? 0);
    if (!Number.isInteger(duration) || duration < 0 || duration > MAX_DURATION_MS) {
      return reply(res, 400, `duration must be a whole number of ms from 0 to ${MAX_DURATION_MS}`);
    }
    if (!takesWork()) return reply(res, 503, 'rejecting');

    const id = nextId++;
    const done = lifecycle.track();
    const end = (status, body) => {
      if (!calls.delete(id)) return;
      clearTimeout(timer);
      log.debug(`call ${id} ${body}`);
      reply(res, status, body);
    };
    const timer = setTimeout(() => end(200, 'completed'), duration);
    calls.set(id, end);
    // 'close' follows the end of the response, or the caller going away: either way the call is over.
    res.on('close', () => {
      if (calls.delete(id)) {
        clearTimeout(timer);
        log.debug(`call ${id} dropped by the caller`);
      }
      done();
    });
    log.debug(`call ${id} started (${duration} ms)`);
  });

  const drain = ctx.drain(server);
  const unsubscribe = lifecycle.onStage((stage) => {
    if (stage === 'hanging-up' || stage === 'stopping') hangUpAll(calls, log);
  });

  try {
    await listen(server, port, ip);
  } catch (err) {
    unsubscribe();
    throw err;
  }
  log.info(`listening on ${ip}:${server.address().port}`);
  return { server, calls, unsubscribe, drain };
}

export async function stop(state, ctx) {
  state.unsubscribe();
  hangUpAll(state.calls, ctx.log);
  await state.drain.close();
}

function hangUpAll(calls, log) {
  if (calls.size > 0) log.info(`hanging up ${calls.size} call(s)`);
  for (const end of [...calls.values()]) end(200, 'hangup');
}

function parsePort(value) {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid port ${JSON.stringify(value)} (sys.config ecallmgr.port or ECALLMGR_PORT): expected 0-65535`);
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
