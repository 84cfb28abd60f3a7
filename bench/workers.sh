#!/usr/bin/env bash
# Workers benchmark (issue 4): noderel's master + N workers (`workers: 2`) side by side with pm2 7
# in cluster mode (`pm2 start app.js -i 2`), the same trivial HTTP app (bench/app), the same
# pinned Node, under wrk on 127.0.0.1:
#   1. failed requests under keep-alive load while the node is reloaded 10 times (HUP to the
#      master / `pm2 reload`) and upgraded twice (`bin/<rel> upgrade 1.0.1`, `upgrade 1.0.2` /
#      app.js replaced + `pm2 reload`); noderel with the plain program app and with a module app
#      that drains with ctx.drain (bench/workers/app-module)
#   2. throughput, `Connection: close` and keep-alive, twice each
#   3. memory: RSS of the tool's processes minus 2 bare `node app.js`, idle and after the load
# Prints a markdown table on stdout, progress on stderr.
# Usage: bench/workers.sh   (from the repository root, about 6 minutes; needs wrk, curl and bc:
#        apt-get install wrk curl bc; installs pm2 into a temp dir, never into the repository or
#        globally)
# Environment: SEQ_SECONDS (wrk duration of each reload/upgrade sequence, default 60),
#   TP_SECONDS (each throughput run, default 10), HUPS (default 10), PM2_SPEC (default pm2@7),
#   MODULE_APP (1: also the module-app sequence, the default; 0: skip it), KEEP (1: keep the
#   temp dir with wrk outputs and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
SEQ_SECONDS=${SEQ_SECONDS:-60}
TP_SECONDS=${TP_SECONDS:-10}
HUPS=${HUPS:-10}
PM2_SPEC=${PM2_SPEC:-pm2@7}
MODULE_APP=${MODULE_APP:-1}
KEEP=${KEEP:-0}
RUNTIME=22.23.3
UPGRADES="1.0.1 1.0.2"
for tool in wrk curl bc; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install wrk curl bc" >&2; exit 1; }
done
make --silent build >/dev/null
cli() { node "$repo/dist/cli/main.js" "$@"; }

work=$(mktemp -d /tmp/noderel-bench-workers.XXXXXX)
export RELEASE_TMP=$work/release-tmp RUNNER_LOG_DIR=$work/log PM2_HOME=$work/pm2-home
app=$work/app                              # the plain program app (bench/app), release benchapp
mod=$work/mod                              # the module app (bench/workers/app-module), release benchmod
B=$app/_rel/benchapp/bin/benchapp          # launchers
BM=$mod/_rel/benchmod/bin/benchmod
N=$app/_rel/benchapp/node-$RUNTIME/bin/node # the release's pinned runtime: pm2 and bare node too
P=$work/pm2/node_modules/pm2/bin/pm2
res=$work/results                          # key=value lines for the report
: >"$res"
bg_pids=

# Every process this bench starts is stopped by pid: the noderel nodes through their launchers,
# pm2 (apps and daemon, in our own PM2_HOME) with `pm2 kill`, wrk and the bare nodes by the pids
# we kept, then anything still running a binary or launcher from $work (an interrupted run).
cleanup() {
  set +e
  trap - INT TERM
  for pid in $bg_pids; do kill -TERM "$pid" 2>/dev/null; done
  for pid in $bg_pids; do wait "$pid" 2>/dev/null; done
  for b in "$B" "$BM"; do
    if [ -x "$b" ] && pid=$("$b" pid 2>/dev/null); then
      "$b" stop --timeout 5 >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
    fi
  done
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
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "$*" >&2; }
die() { echo "workers.sh: $*" >&2; exit 1; }
put() { echo "$1=$2" >>"$res"; }
phase() { put "load_$1" "$(cut -d' ' -f1 /proc/loadavg)"; } # the 1-minute load average as a phase starts
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
taken=
new_port() {
  local p
  while :; do
    p=$(free_port)
    case " $taken " in *" $p "*) continue ;; esac
    taken="$taken $p"
    echo "$p"
    return
  done
}
# Waits (up to 30 s) until 127.0.0.1:$1 answers GET / with 200.
wait_http() {
  for _ in $(seq 300); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null && return 0
    sleep 0.1
  done
  die "port $1 does not answer"
}
# GETs on fresh connections to 127.0.0.1:$1 until every pid of $2 has answered one (the app's
# x-pid header; up to 400 tries): an app process that has served nothing has not yet mapped the
# code of an HTTP answer (its Date header alone maps about 1 MiB of ICU), a bare node has.
serve_each() { # serve_each PORT "PID..."
  local seen=' ' pid p missing
  for _ in $(seq 400); do
    pid=$(curl -fsS -D - -o /dev/null --max-time 2 "http://127.0.0.1:$1/" | awk 'tolower($1) == "x-pid:" { print $2 + 0 }')
    case $seen in *" $pid "*) ;; *) seen="$seen$pid " ;; esac
    missing=
    for p in $2; do case $seen in *" $p "*) ;; *) missing="$missing $p" ;; esac; done
    [ -z "$missing" ] && return 0
  done
  die "port $1: pids$missing never answered"
}
rss_kb() { awk -v k="${2:-VmRSS}:" '$1 == k {print $2}' "/proc/$1/status"; }
sum_rss() { # sum_rss FIELD PID...: VmRSS, or RssAnon (heap, stacks: not shared with anything)
  local t=0 f=$1 p
  shift
  for p in "$@"; do t=$((t + $(rss_kb "$p" "$f"))); done
  echo "$t"
}
# `bin/<rel> status --json` as "ready total pid,pid,..." (workers only) and the release version.
workers_of() { "$1" status --json | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(j.workers.filter((w) => w.state === "ready").length, j.workers.length, j.workers.map((w) => w.pid).join(","), j.version, j.pid);'; }
# The pids of a noderel node: master, then its workers.
noderel_pids() { workers_of "$1" | awk '{ gsub(",", " ", $3); print $5, $3 }'; }
pm2_pids() { echo "$(cat "$PM2_HOME/pm2.pid") $(pm2 pid benchapp | tr '\n' ' ')"; }

# wrk's summary as "requests rps connect read write timeout non2xx".
wrk_parse() {
  awk '
    / requests in / { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Socket errors:/ { gsub(",", ""); c = $4; r = $6; w = $8; t = $10 }
    /Non-2xx or 3xx responses:/ { n = $5 }
    END { printf "%d %s %d %d %d %d %d\n", req, rps, c, r, w, t, n }' "$1"
}
forget() { # forget PID...: no longer ours to stop
  local keep='' p q
  for p in $bg_pids; do
    for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
    keep="$keep $p"
  done
  bg_pids=$keep
}
wrk_bg() { # wrk_bg OUT ARGS...: wrk in the background; its pid in $wrk_pid, its start in $wrk_t0
  local out=$1
  shift
  wrk_t0=$(now)
  wrk "$@" >"$out" 2>&1 &
  wrk_pid=$!
  bg_pids="$bg_pids $wrk_pid"
}
wrk_wait() {
  wait "$wrk_pid" || die "wrk failed: $(cat "$1")"
  forget "$wrk_pid"
  grep -q '^Requests/sec:' "$1" || die "no wrk summary in $1: $(cat "$1")"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at start: $load_start ($(nproc) cores)"
put load_start "$load_start"
put commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
put dirty "$(git status --porcelain -- src 2>/dev/null | awk '{print $2}' | tr '\n' ' ')"

port_rel=$(new_port)
port_mod=$(new_port)
port_pm2=$(new_port)
port_bare1=$(new_port)
port_bare2=$(new_port)

# --- The releases -----------------------------------------------------------------------------
# A source tree for version VSN of an app: the app's files (never a _rel/: `noderel tar --output
# <elsewhere>` of an app at path `.` would pack the project's _rel/ into lib/<app>-<vsn>), its package.json
# and rel/relx.config at VSN (app directories are keyed by app version, as in relx), and app.js
# answering an `x-app-version: VSN` header, so a request shows which version serves it.
version_tree() { # version_tree SRC REL_DIR DEST VSN
  rm -rf "$3"
  mkdir -p "$3"
  (cd "$1" && tar cf - --exclude=./_rel --exclude=./rel .) | tar xf - -C "$3"
  cp -r "$2" "$3/rel"
  sed -i "s/\"version\": \"1.0.0\"/\"version\": \"$4\"/" "$3/package.json"
  sed -i "s/^\(  *\)version: 1.0.0\$/\1version: $4/" "$3/rel/relx.config"
  sed -i "s/'content-type': 'text\/plain' }/'content-type': 'text\/plain', 'x-app-version': '$4' }/" "$3/app.js"
  grep -q "'x-app-version': '$4'" "$3/app.js" || die "could not make $3/app.js version $4"
}
say "building the releases (benchapp: plain program app; benchmod: module app) and their upgrade tarballs ..."
cp -r bench/app "$app"
(cd "$app" && cli init --port "$port_rel" --runtime "$RUNTIME" >/dev/null)
# `workers: 2` on the node type `noderel init` wrote
sed -i '/^node_types:/,/^runtime:/ s/^  benchapp:$/  benchapp:\n    workers: 2/' "$app/rel/relx.config"
grep -q '^    workers: 2$' "$app/rel/relx.config" || die "could not add workers: 2 to $app/rel/relx.config"
cp -r bench/workers/app-module "$mod"
rels=$app
[ "$MODULE_APP" = 1 ] && rels="$app $mod"
for dir in $rels; do
  (cd "$dir" && cli build -q)
  name=$(basename "$(echo "$dir"/_rel/*)")
  for vsn in $UPGRADES; do
    version_tree "$repo/bench/$( [ "$dir" = "$app" ] && echo app || echo workers/app-module)" "$dir/rel" "$work/src-$name-$vsn" "$vsn"
    (cd "$work/src-$name-$vsn" && cli tar -q --rel-version "$vsn" --output "$work/tarballs" --force)
    cp "$work/tarballs/$name-$vsn.tar.gz" "$dir/_rel/$name/releases/"
  done
done
nodevsn=$("$N" --version)

# --- pm2, into the temp dir; the same app.js in a directory of its own -------------------------
latest=$(npm view pm2 version 2>/dev/null || echo '?')
npm install --no-audit --no-fund --prefix "$work/pm2" "$PM2_SPEC" >"$work/npm-install.log" 2>&1 ||
  { cat "$work/npm-install.log" >&2; die "npm install $PM2_SPEC failed"; }
pm2vsn=$(node -p "require('$work/pm2/node_modules/pm2/package.json').version")
say "pm2 $pm2vsn installed ($PM2_SPEC; newest on the registry: $latest)"
pm2() { "$N" "$P" "$@"; }
mkdir -p "$work/pm2app" "$work/bare"
cp bench/app/app.js "$work/pm2app/app.js"
cp bench/app/app.js "$work/bare/app.js"

# --- Start: noderel (plain program app), pm2 cluster mode, 2 bare nodes -------------------------
PORT=$port_rel "$B" start >/dev/null
pm2 ping >/dev/null 2>&1
(cd "$work/pm2app" && PORT=$port_pm2 pm2 start app.js -i 2 --name benchapp >/dev/null)
PORT=$port_bare1 "$N" "$work/bare/app.js" &
bare1=$!
PORT=$port_bare2 "$N" "$work/bare/app.js" &
bare2=$!
bg_pids="$bg_pids $bare1 $bare2"
for p in $port_rel $port_pm2 $port_bare1 $port_bare2; do wait_http "$p"; done
read -r ready total _ <<<"$(workers_of "$B")"
[ "$ready $total" = "2 2" ] || die "benchapp: expected 2 ready workers, found $ready of $total"
for pid in $(pm2_pids); do
  [ "$(readlink "/proc/$pid/exe")" = "$N" ] || die "pm2 process $pid does not run $N"
done
[ "$(pm2 pid benchapp | wc -l)" = 2 ] || die "pm2: expected 2 instances"

# --- 3a. Memory, idle after startup ------------------------------------------------------------
memory() { # memory LABEL
  local rel pm bare
  rel=$(noderel_pids "$B")
  pm=$(pm2_pids)
  bare="$bare1 $bare2"
  # shellcheck disable=SC2086 # word splitting of the pid lists is intended
  {
    put "mem_$1_noderel" "$(sum_rss VmRSS $rel)"
    put "mem_$1_noderel_anon" "$(sum_rss RssAnon $rel)"
    put "mem_$1_noderel_each" "$(for p in $rel; do printf '%s ' "$(rss_kb "$p")"; done)"
    put "mem_$1_pm2" "$(sum_rss VmRSS $pm)"
    put "mem_$1_pm2_anon" "$(sum_rss RssAnon $pm)"
    put "mem_$1_pm2_each" "$(for p in $pm; do printf '%s ' "$(rss_kb "$p")"; done)"
    put "mem_$1_bare" "$(sum_rss VmRSS $bare)"
    put "mem_$1_bare_anon" "$(sum_rss RssAnon $bare)"
    put "mem_$1_bare_each" "$(for p in $bare; do printf '%s ' "$(rss_kb "$p")"; done)"
  }
}
read -r _ rel_workers <<<"$(noderel_pids "$B")"
serve_each "$port_rel" "$rel_workers"
serve_each "$port_pm2" "$(pm2 pid benchapp | tr '\n' ' ')"
serve_each "$port_bare1" "$bare1"
serve_each "$port_bare2" "$bare2"
sleep 3
phase memory
memory idle
say "memory (idle) read"
# The same for noderel without its collection after boot (src/node/heap.ts), for the report;
# then the node as it was for the rest.
"$B" stop >/dev/null
NODEREL_GC_AFTER_BOOT=0 PORT=$port_rel "$B" start >/dev/null
wait_http "$port_rel"
read -r _ rel_workers <<<"$(noderel_pids "$B")"
serve_each "$port_rel" "$rel_workers"
sleep 3
# shellcheck disable=SC2046 # word splitting of the pid list is intended
put mem_idle_nogc_noderel "$(sum_rss VmRSS $(noderel_pids "$B"))"
put mem_idle_nogc_noderel_each "$(for p in $(noderel_pids "$B"); do printf '%s ' "$(rss_kb "$p")"; done)"
"$B" stop >/dev/null
PORT=$port_rel "$B" start >/dev/null
wait_http "$port_rel"
say "memory (idle, noderel without the collection after boot) read"

# --- 2. Throughput: (a) Connection: close, (b) keep-alive; 2 rounds, the tools taking turns ----
throughput() { # throughput TOOL MODE ROUND
  local hdr=() out=$work/wrk-tp-$1-$2-$3.txt
  [ "$2" = close ] && hdr=(-H 'Connection: close')
  case $1 in
    noderel) wrk_bg "$out" -c50 -t2 -d"${TP_SECONDS}s" "${hdr[@]}" "http://127.0.0.1:$port_rel/" && wrk_wait "$out" ;;
    pm2) wrk_bg "$out" -c50 -t2 -d"${TP_SECONDS}s" "${hdr[@]}" "http://127.0.0.1:$port_pm2/" && wrk_wait "$out" ;;
    bare) # 2 processes on 2 ports: one wrk each, half the connections and threads each
      wrk_bg "$out.1" -c25 -t1 -d"${TP_SECONDS}s" "${hdr[@]}" "http://127.0.0.1:$port_bare1/"
      local first=$wrk_pid
      wrk_bg "$out.2" -c25 -t1 -d"${TP_SECONDS}s" "${hdr[@]}" "http://127.0.0.1:$port_bare2/"
      wrk_wait "$out.2"
      wrk_pid=$first && wrk_wait "$out.1"
      paste -d' ' <(wrk_parse "$out.1") <(wrk_parse "$out.2") |
        awk '{ printf "Requests/sec: %.2f\n", $2 + $9; printf "  %d requests in x\n", $1 + $8;
               printf "  Socket errors: connect %d, read %d, write %d, timeout %d\n", $3+$10, $4+$11, $5+$12, $6+$13;
               printf "  Non-2xx or 3xx responses: %d\n", $7 + $14 }' >"$out"
      ;;
  esac
  read -r req rps c r w t n <<<"$(wrk_parse "$out")"
  put "tp_$1_$2_$3" "$rps $req $((c + r + w + t + n))"
  say "  $1 $2 round $3: $rps req/s ($req requests, $((c + r + w + t + n)) failed)"
}
say "throughput: wrk -c50 -t2 -d${TP_SECONDS}s, Connection: close and keep-alive, 2 rounds ..."
phase throughput
for round in 1 2; do
  for mode in close keepalive; do
    for tool in noderel pm2 bare; do throughput "$tool" "$mode" "$round"; done
  done
done

# --- 3b. Memory after the load -----------------------------------------------------------------
sleep 3
memory loaded
say "memory (after the load) read"
kill -TERM "$bare1" "$bare2"
wait "$bare1" "$bare2" 2>/dev/null || true
forget "$bare1" "$bare2"

# --- 1. Failed requests under 10 reloads + 2 upgrades ------------------------------------------
# noderel: HUP to the master, then poll `status --json` until exactly 2 workers are ready and
# none of them is an old one (the old ones have retired: drained and exited).
hup_and_wait() { # hup_and_wait LAUNCHER
  local master old ready total pids
  read -r _ _ old _ master <<<"$(workers_of "$1")"
  kill -HUP "$master"
  for _ in $(seq 600); do
    sleep 0.05
    read -r ready total pids _ _ <<<"$(workers_of "$1")"
    [ "$ready $total" = "2 2" ] || continue
    case ",$old," in *",${pids%%,*},"* | *",${pids##*,},"*) continue ;; esac
    return 0
  done
  die "$1: the workers were not replaced within 30 s of HUP"
}
noderel_sequence() { # noderel_sequence LAUNCHER PORT KEY
  local b=$1 port=$2 key=$3 out=$work/wrk-seq-$3.txt t0 t vsn vsn_now
  phase "$key"
  say "$key: wrk -c50 -t2 -d${SEQ_SECONDS}s (keep-alive) while $HUPS x HUP and upgrade to $UPGRADES ..."
  wrk_bg "$out" -c50 -t2 -d"${SEQ_SECONDS}s" "http://127.0.0.1:$port/"
  sleep 2
  t0=$(now)
  local hups=
  for _ in $(seq "$HUPS"); do
    t=$(now)
    hup_and_wait "$b"
    hups="$hups $(since "$t")"
  done
  local ups=
  for vsn in $UPGRADES; do
    t=$(now)
    "$b" upgrade "$vsn" >>"$work/upgrade-$key.log" 2>&1 || die "$key: upgrade $vsn failed: $(cat "$work/upgrade-$key.log")"
    read -r ready total _ vsn_now _ <<<"$(workers_of "$b")"
    [ "$vsn_now $ready $total" = "$vsn 2 2" ] || die "$key: after upgrade $vsn: version $vsn_now, $ready of $total workers ready"
    ups="$ups $(since "$t")"
  done
  local seq_s
  seq_s=$(since "$t0")
  [ "$(echo "$(since "$wrk_t0") < $SEQ_SECONDS - 1" | bc)" = 1 ] || die "$key: the sequence ($seq_s s) outlasted wrk (-d ${SEQ_SECONDS}s): raise SEQ_SECONDS"
  curl -fsSi "http://127.0.0.1:$port/" | grep -qi '^x-app-version: 1.0.2' || die "$key: 1.0.2 does not serve after the upgrades"
  wrk_wait "$out"
  read -r req rps c r w t n <<<"$(wrk_parse "$out")"
  put "seq_$key" "$req $rps $c $r $w $t $n $seq_s"
  put "seq_${key}_hups" "$hups"
  put "seq_${key}_ups" "$ups"
  say "  $req requests, socket errors connect $c read $r write $w timeout $t, non-2xx $n; sequence $seq_s s"
  "$b" stop >/dev/null
}
noderel_sequence "$B" "$port_rel" noderel
if [ "$MODULE_APP" = 1 ]; then
  PORT=$port_mod "$BM" start >/dev/null
  wait_http "$port_mod"
  noderel_sequence "$BM" "$port_mod" module
fi

# pm2: `pm2 reload benchapp` (returns once both instances are replaced), 10 times; then app.js
# replaced by its 1.0.1 and 1.0.2 (the same change as noderel's versions) and reloaded each time.
phase pm2
say "pm2: wrk -c50 -t2 -d${SEQ_SECONDS}s (keep-alive) while $HUPS x pm2 reload and 2 x (new app.js + pm2 reload) ..."
out=$work/wrk-seq-pm2.txt
wrk_bg "$out" -c50 -t2 -d"${SEQ_SECONDS}s" "http://127.0.0.1:$port_pm2/"
sleep 2
t0=$(now)
pm2_reload() { # appends the time it took to $1's variable
  local old t
  old=$(pm2 pid benchapp | tr '\n' ' ')
  t=$(now)
  pm2 reload benchapp >>"$work/pm2-reload.log" 2>&1 || die "pm2 reload failed: $(tail "$work/pm2-reload.log")"
  printf -v "$1" '%s %s' "${!1}" "$(since "$t")"
  for pid in $(pm2 pid benchapp); do
    case " $old " in *" $pid "*) die "pm2 reload left instance $pid in place" ;; esac
  done
  [ "$(pm2 pid benchapp | wc -l)" = 2 ] || die "pm2: not 2 instances after reload"
}
reloads=
for _ in $(seq "$HUPS"); do pm2_reload reloads; done
ups=
for vsn in $UPGRADES; do
  version_tree "$repo/bench/app" "$app/rel" "$work/pm2-src-$vsn" "$vsn"
  cp "$work/pm2-src-$vsn/app.js" "$work/pm2app/app.js.new"
  mv "$work/pm2app/app.js.new" "$work/pm2app/app.js"
  pm2_reload ups
done
seq_s=$(since "$t0")
[ "$(echo "$(since "$wrk_t0") < $SEQ_SECONDS - 1" | bc)" = 1 ] || die "pm2: the sequence ($seq_s s) outlasted wrk (-d ${SEQ_SECONDS}s): raise SEQ_SECONDS"
curl -fsSi "http://127.0.0.1:$port_pm2/" | grep -qi '^x-app-version: 1.0.2' || die "pm2: 1.0.2 does not serve after the reloads"
wrk_wait "$out"
read -r req rps c r w t n <<<"$(wrk_parse "$out")"
put seq_pm2 "$req $rps $c $r $w $t $n $seq_s"
put seq_pm2_hups "$reloads"
put seq_pm2_ups "$ups"
say "  $req requests, socket errors connect $c read $r write $w timeout $t, non-2xx $n; sequence $seq_s s"
pm2 delete benchapp >/dev/null
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at end: $load_end"
put load_end "$load_end"

# --- The report --------------------------------------------------------------------------------
PM2VSN=$pm2vsn PM2LATEST=$latest NODEVSN=$nodevsn HUPS=$HUPS SEQ=$SEQ_SECONDS TP=$TP_SECONDS MODULE_APP=$MODULE_APP \
  node - "$res" <<'EOF'
const fs = require('node:fs');
const r = Object.fromEntries(fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const e = process.env;
const nums = (s) => s.trim().split(/\s+/).filter(Boolean).map(Number);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const mib = (kb) => (kb / 1024).toFixed(1);
const yes = (ok, why) => `${ok ? 'yes' : '**no**'}: ${why}`;
const fmt = (x) => Math.round(x).toLocaleString('en-US');

const seq = (k) => {
  if (!r[`seq_${k}`]) return null;
  const [req, rps, c, rd, w, t, n, secs] = nums(r[`seq_${k}`]);
  return { req, rps, c, rd, w, t, n, secs, failed: c + rd + w + t + n, hups: nums(r[`seq_${k}_hups`]), ups: nums(r[`seq_${k}_ups`]) };
};
const S = { noderel: seq('noderel'), module: seq('module'), pm2: seq('pm2') };
const failCell = (s) => (s ? `**${s.failed}** of ${fmt(s.req)} (connect ${s.c}, read ${s.rd}, write ${s.w}, timeout ${s.t}; non-2xx ${s.n})` : 'not run');
const tp = (tool, mode) => [1, 2].map((i) => nums(r[`tp_${tool}_${mode}_${i}`]));
const tpCell = (tool, mode) => {
  const runs = tp(tool, mode);
  const failed = runs.reduce((a, x) => a + x[2], 0);
  return `**${fmt(mean(runs.map((x) => x[0])))}** (${runs.map((x) => fmt(x[0])).join(', ')})${failed ? `; ${failed} failed` : ''}`;
};
const tpMean = (tool, mode) => mean(tp(tool, mode).map((x) => x[0]));
const mem = (when, tool) => Number(r[`mem_${when}_${tool}`]);
const each = (when, tool) => nums(r[`mem_${when}_${tool}_each`]).map(mib).join(' + ');
const over = (when, tool) => mem(when, tool) - mem(when, 'bare');

console.log(`\nnoderel (node ${e.NODEVSN}; commit ${r.commit}${r.dirty.trim() ? `, uncommitted changes in ${r.dirty.trim()}` : ''}) | pm2 ${e.PM2VSN} (newest on the registry: ${e.PM2LATEST}), daemon and workers on node ${e.NODEVSN} | 2 workers each | load average (1, 5, 15 min) at the start ${r.load_start}, at the end ${r.load_end}\n`);
console.log('| measurement | noderel | pm2 | goal | met? |');
console.log('|---|---|---|---|---|');
const ok0 = (s) => (s ? yes(s.failed === 0, `${s.failed} failed`) : '');
console.log(`| failed requests, wrk -c50 -t2 -d${e.SEQ}s keep-alive, during ${e.HUPS} reloads + 2 upgrades (plain program app) | ${failCell(S.noderel)} | ${failCell(S.pm2)} | noderel 0 | ${ok0(S.noderel)} |`);
if (S.module) console.log(`| the same, noderel with the module app that calls \`ctx.drain(server)\` (pm2: the plain app, as above) | ${failCell(S.module)} | ${failCell(S.pm2)} | noderel 0 | ${ok0(S.module)} |`);
const ratio = (a, b) => (a / b).toFixed(2);
const close = tpMean('noderel', 'close') / tpMean('pm2', 'close');
const ka = tpMean('noderel', 'keepalive') / tpMean('pm2', 'keepalive');
console.log(`| throughput, req/s, \`-H 'Connection: close'\`, wrk -c50 -t2 -d${e.TP}s: **mean** (run 1, run 2) | ${tpCell('noderel', 'close')} | ${tpCell('pm2', 'close')} | ≥ 1.5× pm2 | ${yes(close >= 1.5, `${ratio(close, 1)}×`)} |`);
console.log(`| throughput, req/s, keep-alive | ${tpCell('noderel', 'keepalive')} | ${tpCell('pm2', 'keepalive')} | ≥ 0.95× pm2 | ${yes(ka >= 0.95, `${ratio(ka, 1)}×`)} |`);
for (const [when, what] of [['idle', 'idle, after startup'], ['loaded', 'after the throughput runs']]) {
  const o = over(when, 'noderel') / over(when, 'pm2');
  console.log(`| supervision overhead, ${what}: RSS of all processes minus 2 bare \`node app.js\` (${mib(mem(when, 'bare'))} MiB), MiB | **${mib(over(when, 'noderel'))}** (${mib(mem(when, 'noderel'))} total) | **${mib(over(when, 'pm2'))}** (${mib(mem(when, 'pm2'))} total) | ≤ 0.5× pm2 | ${yes(o <= 0.5, `${ratio(o, 1)}×`)} |`);
}
console.log('\nDetails:\n');
console.log('| | noderel | pm2 | 2 bare `node app.js` |');
console.log('|---|---|---|---|');
for (const [when, what] of [['idle', 'idle'], ['loaded', 'after the load']]) {
  console.log(`| RSS, MiB, ${what}: master/daemon + workers | ${each(when, 'noderel')} | ${each(when, 'pm2')} | ${each(when, 'bare')} |`);
  const anon = (tool) => `${mib(mem(when, `${tool}_anon`))} anonymous + ${mib(mem(when, tool) - mem(when, `${tool}_anon`))} file-backed and shared`;
  console.log(`| RSS, MiB, ${what}: of the total | ${anon('noderel')} | ${anon('pm2')} | ${anon('bare')} |`);
}
{
  const total = Number(r.mem_idle_nogc_noderel);
  const o = (total - mem('idle', 'bare')) / over('idle', 'pm2');
  console.log(`| RSS, MiB, idle: noderel without its collection after boot (\`NODEREL_GC_AFTER_BOOT=0\`, the node started again) | ${nums(r.mem_idle_nogc_noderel_each).map(mib).join(' + ')}: overhead **${mib(total - mem('idle', 'bare'))}**, ${ratio(o, 1)}× pm2's | | |`);
}
const tpBare = (mode) => tpCell('bare', mode);
console.log(`| throughput, req/s, Connection: close / keep-alive | ${tpCell('noderel', 'close')} / ${tpCell('noderel', 'keepalive')} | ${tpCell('pm2', 'close')} / ${tpCell('pm2', 'keepalive')} | ${tpBare('close')} / ${tpBare('keepalive')} (2 wrk, -c25 -t1 each, one per port) |`);
const times = (s, k) => (s ? `${mean(s[k]).toFixed(2)} s (${Math.min(...s[k]).toFixed(2)} .. ${Math.max(...s[k]).toFixed(2)})` : '');
console.log(`| one reload, until replaced: HUP + \`status --json\` polling / \`pm2 reload\`: mean (min .. max) | ${times(S.noderel, 'hups')}${S.module ? `; module app ${times(S.module, 'hups')}` : ''} | ${times(S.pm2, 'hups')} | |`);
console.log(`| one upgrade: \`bin/<rel> upgrade VSN\` / new app.js + \`pm2 reload\` | ${times(S.noderel, 'ups')}${S.module ? `; module app ${times(S.module, 'ups')}` : ''} | ${times(S.pm2, 'ups')} | |`);
const seqCell = (s) => (s ? `${s.secs.toFixed(1)} s; ${fmt(s.rps)} req/s over the ${e.SEQ} s` : '');
console.log(`| load average (1 min) as the phases started: memory, throughput, noderel sequence${S.module ? ', module-app sequence' : ''}, pm2 sequence | ${['memory', 'throughput', 'noderel', ...(S.module ? ['module'] : []), 'pm2'].map((k) => r[`load_${k}`]).join(', ')} | | |`);
console.log(`| the whole sequence (wrk started 2 s before it) | ${seqCell(S.noderel)}${S.module ? `; module app ${seqCell(S.module)}` : ''} | ${seqCell(S.pm2)} | |`);
EOF
