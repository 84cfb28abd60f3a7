// The trivial app of bench/launcher.sh: answers 200 "ok" on 127.0.0.1:$PORT.
'use strict';
const http = require('node:http');

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('benchapp: set PORT');
  process.exit(1);
}
// x-pid: which process answered (bench/workers.sh has every process answer once before it reads memory)
const pid = String(process.pid);
http
  .createServer((req, res) => {
    res.writeHead(200, { 'x-pid': pid, 'content-type': 'text/plain' });
    res.end('ok');
  })
  .listen(port, '127.0.0.1');
