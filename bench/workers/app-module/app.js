// bench/app as a noderel module app (bench/workers.sh): answers 200 "ok" on 127.0.0.1:$PORT,
// and drains its server with the node's stages (ctx.drain, as apps/crossbar does): once the
// worker leaves `running`, responses say `Connection: close`, idle keep-alive connections are
// closed after a grace, and stop() lets every connection finish before the worker exits.
import http from 'node:http';

export async function start(ctx) {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port <= 0) throw new Error('benchmod: set PORT');
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  const drain = ctx.drain(server);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, drain };
}

export async function stop(state) {
  await state.drain.close();
}
