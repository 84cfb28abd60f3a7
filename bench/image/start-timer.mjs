// node bench/image/start-timer.mjs SPEC.json OUT.json
// Container start until the port answers, under runc, the cases taking turns (WARMUP + RUNS
// rounds). SPEC: {runcRoot, warmup, runs, cases: [{name, bundle, port}]}. Each run: spawn
// `runc --root R run --bundle B <id>` (a child, stdio ignored; the bundle's config.json has no
// network namespace, so 127.0.0.1:port reaches the app), time until an HTTP GET on
// 127.0.0.1:port answers 200 (a fresh connection every 2 ms), then `runc kill <id> TERM`, wait
// for runc run to exit (KILL after 10 s), `runc delete -f <id>`, and wait for the port to close.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [specFile, outFile] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const runc = (...args) => spawnSync('runc', ['--root', spec.runcRoot, ...args], { stdio: 'ignore', timeout: 30_000 });
let current;
const cleanup = () => {
  if (current) {
    runc('kill', current.id, 'KILL');
    runc('delete', '-f', current.id);
    current.child.kill('SIGKILL');
  }
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup(); process.exit(130); });

function get(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.on('connect', () => s.write('GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'));
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve(data.startsWith('HTTP/1.1 200') && data.endsWith('ok')));
    s.on('error', () => resolve(false));
  });
}

let n = 0;
async function once(c) {
  const id = `nrbench-${process.pid}-${++n}`;
  let out = '';
  const t0 = performance.now();
  const child = spawn('runc', ['--root', spec.runcRoot, 'run', '--bundle', c.bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  current = { id, child };
  let done = false;
  exited.then(() => (done = true));
  while (!(await get(c.port))) {
    if (done || performance.now() - t0 > 30_000) {
      cleanup();
      throw new Error(`${c.name}: port ${c.port} did not answer (${done ? 'the container exited' : 'after 30 s'}):\n${out.slice(-3000)}`);
    }
    await sleep(2);
  }
  const ms = performance.now() - t0;
  runc('kill', id, 'TERM');
  const killTimer = setTimeout(() => runc('kill', id, 'KILL'), 10_000);
  await exited;
  clearTimeout(killTimer);
  runc('delete', '-f', id);
  current = undefined;
  for (let i = 0; i < 2500 && (await get(c.port)); i++) await sleep(2);
  return ms;
}

const times = Object.fromEntries(spec.cases.map((c) => [c.name, []]));
for (let round = 0; round < spec.warmup + spec.runs; round++) {
  for (const c of spec.cases) {
    const ms = await once(c);
    if (round >= spec.warmup) times[c.name].push(ms);
  }
}
const stats = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const mean = a.reduce((x, y) => x + y, 0) / a.length;
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  const sd = Math.sqrt(a.reduce((x, y) => x + (y - mean) ** 2, 0) / Math.max(1, a.length - 1));
  return { n: a.length, mean, sd, median, min: s[0], max: s[s.length - 1], all: a };
};
const result = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stats(v)]));
fs.writeFileSync(outFile, JSON.stringify(result, null, 2));
for (const [k, s] of Object.entries(result)) {
  console.log(`| ${k} | ${s.mean.toFixed(1)} ± ${s.sd.toFixed(1)} | ${s.median.toFixed(1)} | ${s.min.toFixed(1)} .. ${s.max.toFixed(1)} | ${s.n} |`);
}
