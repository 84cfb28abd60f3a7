#!/usr/bin/env bash
# Launcher benchmark (issue 3): bin/<name> pid, ping, status, start and stop of a release of a
# trivial HTTP app (bench/app), side by side with pm2 7 running the same app on the same pinned
# Node, and with bare `node` as the baseline.
# Usage: bench/launcher.sh   (from the repository root; installs pm2 into a temp dir, never into
#        the repository or globally; every measurement is timed by a Node script the bench writes,
#        the cases taking turns)
# Environment: RUNS (default 20), WARMUP (default 3), PM2_SPEC (default pm2@7).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
PM2_SPEC=${PM2_SPEC:-pm2@7}
RUNTIME=22.23.3
make --silent build >/dev/null

work=$(mktemp -d /tmp/noderel-bench-launcher.XXXXXX)
app=$work/app
export RELEASE_TMP=$work/release-tmp RUNNER_LOG_DIR=$work/log PM2_HOME=$work/pm2-home
B=$app/_rel/benchapp/bin/benchapp          # the launcher
N=$app/_rel/benchapp/node-$RUNTIME/bin/node # the release's pinned runtime, used for everything
P=$work/pm2/node_modules/pm2/bin/pm2        # the pm2 CLI, run with $N

# Every process this bench starts is stopped by pid: the noderel node through its launcher, pm2
# (its apps and daemon, in our own PM2_HOME) with `pm2 kill`, then anything still running the
# node binary inside $work or a launcher from $work (a run interrupted half-way).
cleanup() {
  set +e
  trap - INT TERM
  [ -z "${bg:-}" ] || { kill -TERM "$bg" 2>/dev/null; wait "$bg" 2>/dev/null; }
  if [ -x "$B" ] && pid=$("$B" pid 2>/dev/null); then
    "$B" stop --timeout 5 >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
  fi
  # only a daemon that is there: any other pm2 command would spawn one
  if [ -f "$P" ] && [ -f "$PM2_HOME/pm2.pid" ] && kill -0 "$(cat "$PM2_HOME/pm2.pid")" 2>/dev/null; then
    "$N" "$P" kill >/dev/null 2>&1
  fi
  for round in TERM KILL; do
    left=
    for dir in /proc/[0-9]*; do
      pid=${dir#/proc/}
      case $pid in "$$" | "$BASHPID") continue ;; esac
      exe=$(readlink "$dir/exe" 2>/dev/null) || continue
      args=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null) || continue
      case "$exe $args" in
        *"$work/"*) kill "-$round" "$pid" 2>/dev/null && left="$left $pid" ;;
      esac
    done
    [ -n "$left" ] || break
    [ "$round" = KILL ] && echo "cleanup: killed leftover pids$left" >&2
    sleep 0.5
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Long steps run in the background and are waited for, so that INT/TERM stop the bench at once
# (bash runs a trap only once its foreground command has finished).
bg=
in_bg() {
  "$@" &
  bg=$!
  wait "$bg"
  bg=
}

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
port_rel=$(free_port)
port_pm2=$(free_port)
port_bare=$(free_port)
while [ "$port_pm2" = "$port_rel" ]; do port_pm2=$(free_port); done
while [ "$port_bare" = "$port_rel" ] || [ "$port_bare" = "$port_pm2" ]; do port_bare=$(free_port); done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at start: $load_start ($(nproc) cores)" >&2

# --- The release: bench/app copied, noderel init + build with the compiled CLI -----------------
cp -r bench/app "$app"
(cd "$app" && node "$repo/dist/cli/main.js" init --port "$port_rel" --runtime "$RUNTIME" >/dev/null &&
  node "$repo/dist/cli/main.js" build -q)
nodevsn=$("$N" --version)

# --- pm2, into the temp dir --------------------------------------------------------------------
latest=$(npm view pm2 version 2>/dev/null)
npm install --no-audit --no-fund --prefix "$work/pm2" "$PM2_SPEC" >"$work/npm-install.log" 2>&1 ||
  { cat "$work/npm-install.log" >&2; echo "npm install $PM2_SPEC failed" >&2; exit 1; }
pm2vsn=$(node -p "require('$work/pm2/node_modules/pm2/package.json').version")
echo "pm2 $pm2vsn installed ($PM2_SPEC; newest on the registry: $latest)" >&2
pm2() { "$N" "$P" "$@"; }

# --- The poller: start until the port answers, stop until the process is gone ------------------
cat >"$work/timer.mjs" <<'EOF'
// node timer.mjs SPEC.json OUT.json: runs the cases of SPEC round-robin (WARMUP + RUNS rounds)
// and writes the times in ms. mode "start": from spawning `cmd` until an HTTP GET on the port
// answers 200 (a fresh TCP connect every 2 ms), and until the command returned. mode "stop":
// after `prepare` (and the port answering, then idle), from spawning `cmd` until the process
// whose pid `pid` printed is gone (kill -0 fails, or a zombie). mode "exec": from spawning `cmd`
// until it exits (0 required); the cases take turns, so a noisy moment of the machine falls on
// all of them alike, which hyperfine's one-command-after-the-other groups do not give.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [specFile, outFile] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
}

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
async function untilAnswers(port, ms = 30_000) {
  const deadline = performance.now() + ms;
  while (!(await get(port))) {
    if (performance.now() > deadline) throw new Error(`port ${port} did not answer within ${ms} ms`);
    await sleep(2);
  }
}
async function untilClosed(port) {
  for (let i = 0; i < 2500; i++) {
    if (!(await get(port))) return;
    await sleep(2);
  }
  throw new Error(`port ${port} still answers after cleanup`);
}
function gone(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code !== 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return true;
  }
}
function sh(c, what, env) {
  const r = spawnSync('sh', ['-c', c], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${what} \`${c}\` failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}
function run(c, pid) {
  const argv = c.cmd.map((a) => (a === '{pid}' ? String(pid) : a));
  const child = spawn(argv[0], argv.slice(1), { cwd: c.cwd, env: { ...process.env, ...c.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('close', (code) => { children.delete(child); resolve({ code, stderr, at: performance.now() }); }));
  return { child, exited };
}
async function checkExit(c, r) {
  const e = await r.exited;
  if (e.code !== 0 && !c.bare) throw new Error(`${c.name}: \`${c.cmd.join(' ')}\` exited ${e.code}: ${e.stderr}`);
  return e;
}

async function startOnce(c) {
  if (c.prepare) sh(c.prepare, 'prepare', c.env);
  if (await get(c.port)) throw new Error(`${c.name}: port ${c.port} answers before the start`);
  const t0 = performance.now();
  const r = run(c);
  const failed = r.exited.then((e) => { if (e.code !== 0 && !c.bare) throw new Error(`${c.name}: exited ${e.code}: ${e.stderr}`); });
  await Promise.race([untilAnswers(c.port), failed.then(() => new Promise(() => {}))]);
  const answered = performance.now() - t0;
  if (c.bare) r.child.kill('SIGTERM');
  const e = await checkExit(c, r);
  if (c.cleanup) sh(c.cleanup, 'cleanup', c.env);
  await untilClosed(c.port);
  return { answered, returned: c.bare ? null : e.at - t0 };
}

async function stopOnce(c) {
  let pid;
  let bare;
  if (c.bare) {
    bare = run({ ...c, cmd: c.bareCmd });
    pid = bare.child.pid;
  } else {
    sh(c.prepare, 'prepare', c.env);
  }
  await untilAnswers(c.port);
  if (!c.bare) pid = Number(sh(c.pid, 'pid', c.env));
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${c.name}: no pid`);
  await sleep(c.idleMs ?? 250);
  const t0 = performance.now();
  const r = run(c, pid);
  const e = await checkExit(c, r);
  const returned = e.at - t0;
  const aliveAtReturn = !gone(pid);
  while (!gone(pid)) await new Promise((res) => setImmediate(res));
  const stopped = performance.now() - t0;
  if (bare) await bare.exited;
  if (c.cleanup) sh(c.cleanup, 'cleanup', c.env);
  await untilClosed(c.port);
  return { stopped, returned, aliveAtReturn };
}

async function execOnce(c) {
  const t0 = performance.now();
  const e = await checkExit(c, run(c));
  return { ran: e.at - t0 };
}

const once = { start: startOnce, stop: stopOnce, exec: execOnce }[spec.mode];
const results = Object.fromEntries(spec.cases.map((c) => [c.name, []]));
for (let round = 0; round < spec.warmup + spec.runs; round++) {
  for (const c of spec.cases) {
    const r = await once(c);
    if (round >= spec.warmup) results[c.name].push(r);
  }
  process.stderr.write('.');
}
process.stderr.write('\n');
fs.writeFileSync(outFile, JSON.stringify(results, null, 2));
EOF

# --- 1-3: pid, ping, status against running nodes (pm2 daemon warm) ---------------------------
PORT=$port_rel "$B" start
pm2 ping >/dev/null 2>&1
pm2 ping >/dev/null
PORT=$port_pm2 pm2 start "$app/app.js" --name benchapp --interpreter "$N" >/dev/null
host=$(uname -n)
node_name=benchapp@${host%%.*}
"$B" ping >/dev/null
[ "$(pm2 pid benchapp)" -gt 0 ]

# The cases take turns (timer.mjs, mode exec). Beside the three commands and `node -e 0`, where
# the time goes: the client (ctl.js) run directly with the launcher's environment (no shell);
# ctl.js `cookie` (its code and the cookie, no socket); the least a Unix socket client loads
# (node:net); the launcher's own work before `foreground` execs the node (a copy of bin/benchapp
# with that exec replaced by exit); loading the node runtime (boot.js required, not run);
# /bin/true, what spawning a process costs the timer itself.
lib=$(echo "$app"/_rel/benchapp/lib/noderel-*)
noexec=$app/_rel/benchapp/bin/.benchapp-noexec
# shellcheck disable=SC2016 # the launcher's own text, matched literally
sed 's/^\( *\)exec "\$NODE_BIN" \$NODE_FLAGS "\$BOOT" "\$COMMAND" "\$@"$/\1exit 0/' "$B" >"$noexec"
chmod +x "$noexec"
! cmp -s "$B" "$noexec" || { echo "cannot find the foreground exec in $B" >&2; exit 1; }
run_dir=$RELEASE_TMP/$node_name
ctl_env="{\"NODEREL_ROOT\":\"$app/_rel/benchapp\",\"NODEREL_REL_NAME\":\"benchapp\",\"NODEREL_REL_VSN\":\"1.0.0\",\"NODEREL_NODE_TYPE\":\"benchapp\",\"NODEREL_NODE_NAME\":\"$node_name\",\"NODEREL_RUN_DIR\":\"$run_dir\",\"NODEREL_LOG_DIR\":\"$RUNNER_LOG_DIR/$node_name\",\"NODEREL_VM_ARGS\":\"$run_dir/vm.args\",\"NODE_COMPILE_CACHE\":\"$run_dir/compile-cache\"}"
[ "$(env NODEREL_ROOT="$app/_rel/benchapp" NODEREL_REL_NAME=benchapp NODEREL_REL_VSN=1.0.0 NODEREL_NODE_TYPE=benchapp \
  NODEREL_NODE_NAME="$node_name" NODEREL_RUN_DIR="$run_dir" NODEREL_VM_ARGS="$run_dir/vm.args" "$N" "$lib/ctl.js" ping)" = pong ] ||
  { echo "ctl.js ping, run directly, did not answer pong" >&2; exit 1; }
cat >"$work/exec.json" <<EOF
{ "mode": "exec", "runs": $RUNS, "warmup": $WARMUP, "cases": [
  { "name": "bin pid", "cmd": ["$B", "pid"] },
  { "name": "pm2 pid", "cmd": ["$N", "$P", "pid", "benchapp"] },
  { "name": "node -e 0", "cmd": ["$N", "-e", "0"] },
  { "name": "bin ping", "cmd": ["$B", "ping"] },
  { "name": "pm2 ping", "cmd": ["$N", "$P", "ping"] },
  { "name": "bin status", "cmd": ["$B", "status"] },
  { "name": "pm2 jlist", "cmd": ["$N", "$P", "jlist"] },
  { "name": "require net", "cmd": ["$N", "-e", "require('node:net')"] },
  { "name": "connect only", "cmd": ["$N", "-e", "require('node:net').connect(process.argv[1]).once('data', () => process.exit(0))", "$run_dir/ctl"] },
  { "name": "ctl cookie", "env": $ctl_env, "cmd": ["$N", "$lib/ctl.js", "cookie"] },
  { "name": "ctl ping", "env": $ctl_env, "cmd": ["$N", "$lib/ctl.js", "ping"] },
  { "name": "foreground, launcher only", "cmd": ["$noexec", "foreground"] },
  { "name": "require boot.js", "cmd": ["$N", "-e", "require('$lib/boot.js')"] },
  { "name": "true", "cmd": ["/bin/true"] }
] }
EOF
echo "pid, ping, status and the split ($((WARMUP + RUNS)) rounds) " >&2
in_bg node "$work/timer.mjs" "$work/exec.json" "$work/exec-times.json"
"$B" stop
pm2 delete benchapp >/dev/null

# --- 4-5: start until the port answers, stop until the process is gone -------------------------
rel_env="{\"PORT\":\"$port_rel\"}"
pm2_env="{\"PORT\":\"$port_pm2\"}"
bare_env="{\"PORT\":\"$port_bare\"}"
cat >"$work/start.json" <<EOF
{ "mode": "start", "runs": $RUNS, "warmup": $WARMUP, "cases": [
  { "name": "node", "bare": true, "port": $port_bare, "env": $bare_env, "cwd": "$app", "cmd": ["$N", "app.js"] },
  { "name": "noderel", "port": $port_rel, "env": $rel_env, "cwd": "$app", "cmd": ["$B", "start"], "cleanup": "'$B' stop" },
  { "name": "pm2", "port": $port_pm2, "env": $pm2_env, "cwd": "$app",
    "cmd": ["$N", "$P", "start", "app.js", "--name", "benchapp", "--interpreter", "$N"], "cleanup": "'$N' '$P' delete benchapp >/dev/null" },
  { "name": "foreground", "bare": true, "port": $port_rel, "env": $rel_env, "cwd": "$app", "cmd": ["$B", "foreground"] }
] }
EOF
cat >"$work/stop.json" <<EOF
{ "mode": "stop", "runs": $RUNS, "warmup": $WARMUP, "cases": [
  { "name": "node", "bare": true, "port": $port_bare, "env": $bare_env, "cwd": "$app", "bareCmd": ["$N", "app.js"], "cmd": ["kill", "-TERM", "{pid}"] },
  { "name": "noderel", "port": $port_rel, "env": $rel_env, "cwd": "$app", "prepare": "'$B' start", "pid": "'$B' pid", "cmd": ["$B", "stop"] },
  { "name": "pm2", "port": $port_pm2, "env": $pm2_env, "cwd": "$app",
    "prepare": "cd '$app' && '$N' '$P' start app.js --name benchapp --interpreter '$N' >/dev/null", "pid": "'$N' '$P' pid benchapp",
    "cmd": ["$N", "$P", "stop", "benchapp"], "cleanup": "'$N' '$P' delete benchapp >/dev/null" }
] }
EOF
echo "start ($((WARMUP + RUNS)) rounds) " >&2
in_bg node "$work/timer.mjs" "$work/start.json" "$work/start-times.json"
echo "stop ($((WARMUP + RUNS)) rounds) " >&2
in_bg node "$work/timer.mjs" "$work/stop.json" "$work/stop-times.json"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- The report --------------------------------------------------------------------------------
LOAD_START=$load_start LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg) PM2VSN=$pm2vsn PM2LATEST=$latest NODEVSN=$nodevsn RUNS=$RUNS \
  node - "$work" <<'EOF'
const fs = require('node:fs');
const work = process.argv[2];
const read = (f) => JSON.parse(fs.readFileSync(`${work}/${f}`, 'utf8'));
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, mean: s.reduce((a, b) => a + b, 0) / s.length, min: s[0], max: s.at(-1) };
};
const ex = read('exec-times.json');
const x = (k) => stats(ex[k].map((r) => r.ran));
const pid = { noderel: x('bin pid'), pm2: x('pm2 pid') };
const ping = { noderel: x('bin ping'), pm2: x('pm2 ping'), node: x('node -e 0') };
const status = { noderel: x('bin status'), pm2: x('pm2 jlist') };
const st = read('start-times.json'), sp = read('stop-times.json');
const col = (o, k, field) => stats(o[k].map((r) => r[field]));
const start = { node: col(st, 'node', 'answered'), noderel: col(st, 'noderel', 'answered'), pm2: col(st, 'pm2', 'answered') };
const startRet = { noderel: stats(st.noderel.map((r) => r.returned)), pm2: stats(st.pm2.map((r) => r.returned)) };
const stop = { node: col(sp, 'node', 'stopped'), noderel: col(sp, 'noderel', 'stopped'), pm2: col(sp, 'pm2', 'stopped') };
const stopRet = { noderel: stats(sp.noderel.map((r) => r.returned)), pm2: stats(sp.pm2.map((r) => r.returned)) };
const alive = (k) => sp[k].filter((r) => r.aliveAtReturn).length;

const f = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1));
const cell = (s) => (s ? `**${f(s.median)}** / ${f(s.mean)}` : '');
const yes = (ok, why) => `${ok ? 'yes' : '**no**'}: ${why}`;
const r2 = (x) => x.toFixed(2);
const rows = [
  ['`pid`', '`bin/benchapp pid`', pid.noderel, '`pm2 pid benchapp`', pid.pm2, '', null, '', ''],
  ['`ping`', '`bin/benchapp ping`', ping.noderel, '`pm2 ping`', ping.pm2, '`node -e 0`', ping.node, '≤ 1.3× node -e 0',
    yes(ping.noderel.median <= 1.3 * ping.node.median, `${r2(ping.noderel.median / ping.node.median)}×`)],
  ['`status`', '`bin/benchapp status`', status.noderel, '`pm2 jlist`', status.pm2, '', null, '', ''],
  ['start until the port answers', '`bin/benchapp start`', start.noderel, '`pm2 start app.js`', start.pm2, '`node app.js`', start.node,
    '≤ 1.5× node; ≥ 2.5× faster than pm2',
    `${yes(start.noderel.median <= 1.5 * start.node.median, `${r2(start.noderel.median / start.node.median)}× node`)}; ` +
      yes(start.pm2.median >= 2.5 * start.noderel.median, `pm2 takes ${r2(start.pm2.median / start.noderel.median)}×`)],
  ['start: the command returns', '`bin/benchapp start`', startRet.noderel, '`pm2 start app.js`', startRet.pm2, '', null, '', ''],
  ['stop until the process is gone', '`bin/benchapp stop`', stop.noderel, '`pm2 stop benchapp`', stop.pm2, '`kill -TERM`', stop.node, '≤ 150 ms',
    yes(stop.noderel.median <= 150, `${f(stop.noderel.median)} ms`)],
];
const e = process.env;
console.log(`\nnoderel (node ${e.NODEVSN}) | pm2 ${e.PM2VSN} (newest on the registry: ${e.PM2LATEST}), CLI and apps on node ${e.NODEVSN} | ${e.RUNS} runs each | load average (1, 5, 15 min) at the start ${e.LOAD_START}, at the end ${e.LOAD_END}\n`);
console.log('| measurement | noderel | ms | pm2 | ms | baseline | ms | goal | met? |');
console.log('|---|---|---:|---|---:|---|---:|---|---|');
for (const [what, nc, ns, pc, ps, bc, bs, goal, met] of rows) {
  console.log(`| ${what} | ${nc} | ${cell(ns)} | ${pc} | ${cell(ps)} | ${bc} | ${cell(bs)} | ${goal} | ${met} |`);
}
console.log('\nms: **median** / mean.');
console.log(`stop: process still alive when the command returned: noderel ${alive('noderel')}/${sp.noderel.length}, pm2 ${alive('pm2')}/${sp.pm2.length}; command return: noderel ${cell(stopRet.noderel)}, pm2 ${cell(stopRet.pm2)}`);
console.log('\nWhere the time goes (process run time, except the three "until the port answers" rows):\n');
console.log('| command | ms | what it is |');
console.log('|---|---:|---|');
const fg = col(st, 'foreground', 'answered');
const steps = [
  ['`/bin/true`', x('true'), "spawning a process and seeing it exit: the timer's own share of every row"],
  ['`node -e 0`', x('node -e 0'), 'Node startup'],
  ["`node -e \"require('node:net')\"`", x('require net'), 'the least any Node client of a Unix socket loads'],
  ['`node -e` connect to the control socket, exit on its first bytes', x('connect only'), 'the floor of any Node client of the node: connect and read one line (no cookie, no MAC, no answer)'],
  ['`node lib/noderel-*/ctl.js cookie`', x('ctl cookie'), 'the client bundle (ctl.js, compile cache warm) and the cookie resolved; no socket'],
  ['`node lib/noderel-*/ctl.js ping`', x('ctl ping'), 'plus node:net, connect, authenticate (HMAC in JS), ping: `bin/benchapp ping` without the shell'],
  ['`bin/benchapp ping`', x('bin ping'), 'plus the launcher (sh) before its exec'],
  ['`bin/benchapp pid`', x('bin pid'), 'the launcher alone, no node (what a client command costs in sh)'],
  ['`bin/benchapp foreground`, launcher only', x('foreground, launcher only'), 'the launcher up to its exec of the node (vm.args copied and substituted, run dir)'],
  ["`node -e \"require('lib/noderel-*/boot.js')\"`", x('require boot.js'), 'loading the node runtime (one CommonJS bundle, compiled; nothing started)'],
  ['`node app.js` until the port answers', start.node, 'Node startup and the app'],
  ['`bin/benchapp foreground` until the port answers', fg, 'plus the launcher, boot.js and the services (lock, pid file, control socket, log)'],
];
for (const [k, s, what] of steps) console.log(`| ${k} | ${cell(s)} | ${what} |`);
console.log(`| \`bin/benchapp start\` until the port answers | ${cell(start.noderel)} | plus detaching (setsid, output to console.log) |`);
EOF
