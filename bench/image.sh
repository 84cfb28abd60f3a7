#!/usr/bin/env bash
# Image benchmark: `noderel image` (an OCI image of the release, no Docker daemon) measured side
# by side with its peers, in one run:
#   1. build time of the demo release kazoo as an image (warm, with an empty layer cache, and
#      `noderel build` alone for what the image adds), hyperfine;
#   2. a code-only change pushes only the changed layer (a local docker-registry);
#   3. image sizes: kazoo's own layers against its release tarball; the trivial app bench/app as a
#      noderel image against the same app imaged by containerify (npm, into the temp dir) on the
#      same Debian base with the same pinned node binary as a layer;
#   4. container start until the port answers under runc: bench/app's noderel image
#      (`bin/benchapp foreground`) against containerify's image (`node app.js`), taking turns.
# Usage: bench/image.sh   (from the repository root, as root: runc needs it. Needs hyperfine,
#        skopeo, umoci, runc, docker-registry, and the Debian base OCI layout the e2e tests make
#        with mmdebstrap, $NODEREL_CACHE_DIR/images/debian-bookworm-base or
#        /tmp/noderel-test-cache/images/debian-bookworm-base; BASE=<layout dir> to use another
#        one tagged `base`.) Only 127.0.0.1; everything in a temp dir, removed at the end.
# Environment: RUNS (start rounds, default 15), WARMUP (default 2), CONTAINERIFY_SPEC (default containerify@4).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
RUNS=${RUNS:-15}
WARMUP=${WARMUP:-2}
CONTAINERIFY_SPEC=${CONTAINERIFY_SPEC:-containerify@4}
RUNTIME=22.23.3
BASE=${BASE:-${NODEREL_CACHE_DIR:-/tmp/noderel-test-cache}/images/debian-bookworm-base}
[ -f "$BASE/index.json" ] || {
  echo "no Debian base OCI layout at $BASE: run the image e2e tests once (test/helpers/oci-base.ts builds it with mmdebstrap), or set BASE" >&2
  exit 1
}
for t in hyperfine skopeo umoci runc docker-registry curl; do
  command -v "$t" >/dev/null || { echo "$t is not on PATH" >&2; exit 1; }
done
make --silent build >/dev/null

work=$(mktemp -d /tmp/noderel-bench-image.XXXXXX)
export NODEREL_CACHE_DIR=$work/cache   # the bench's own runtime and image-layer cache
cli="node $repo/dist/cli/main.js"
runc_root=$work/runc
registry_pid=
timer_pid=

# Every process this bench starts is stopped by pid: the timer (which kills and deletes its
# container), any container left in our runc root, the registry.
cleanup() {
  set +e
  trap - INT TERM
  [ -z "$timer_pid" ] || { kill -TERM "$timer_pid" 2>/dev/null; wait "$timer_pid" 2>/dev/null; }
  if [ -d "$runc_root" ]; then
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      runc --root "$runc_root" kill "$id" KILL >/dev/null 2>&1
      runc --root "$runc_root" delete -f "$id" >/dev/null 2>&1
    done
  fi
  [ -z "$registry_pid" ] || { kill -TERM "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; }
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mib() { echo "scale=1; $1 / 1048576" | bc; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
# manifest JSON on stdin -> "<sum of layer sizes> <config size> <layer count>"
sum_layers() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s);console.log(m.layers.reduce((a,l)=>a+l.size,0),m.config.size,m.layers.length)})'; }
# two manifests (files) -> the layers of the second that the first lacks, "digest size" a line
new_layers() { node -e 'const fs=require("fs");const[a,b]=process.argv.slice(1).map(f=>JSON.parse(fs.readFileSync(f)));const have=new Set(a.layers.map(l=>l.digest));for(const l of b.layers)if(!have.has(l.digest))console.log(l.digest,l.size)' "$1" "$2"; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "commit $(git rev-parse --short HEAD) ($(git log -1 --format=%cd --date=format:%Y-%m-%d)), $(date -u +%FT%TZ), load average $load_start ($(nproc) cores), host node $(node --version)"
echo "base: $BASE ($(skopeo inspect --raw "oci:$BASE:base" | sum_layers | awk '{print $1}') bytes of layers)"

# --- 1. Build time ------------------------------------------------------------------------------
mkdir "$work/kazoo"
cp -r rel apps "$work/kazoo/"
echo
echo "## first image build (fetches the runtime into the bench's cache)"
(cd "$work/kazoo" && /usr/bin/time -f "%e s" $cli image -q --base "oci-layout:$BASE:base" --oci-layout "$work/kazoo-img")

echo
echo "## 1. build time"
hyperfine --warmup 1 --runs 10 --export-markdown "$work/warm.md" \
  -n "image, warm" "cd $work/kazoo && $cli image -q --base oci-layout:$BASE:base --oci-layout $work/kazoo-img" \
  >/dev/null
hyperfine --runs 5 --export-markdown "$work/cold.md" \
  --prepare "rm -rf $NODEREL_CACHE_DIR/image-layers $NODEREL_CACHE_DIR/image-base-checks" \
  -n "image, empty layer cache" "cd $work/kazoo && $cli image -q --base oci-layout:$BASE:base --oci-layout $work/kazoo-img" \
  >/dev/null
hyperfine --warmup 1 --runs 10 --export-markdown "$work/build.md" \
  -n "build alone" "cd $work/kazoo && $cli build -q" >/dev/null
cat "$work/warm.md"; tail -n +3 "$work/cold.md"; tail -n +3 "$work/build.md"

# --- 2. Code-only change: what a push uploads ---------------------------------------------------
echo
echo "## 2. push, then a code-only change pushed again"
reg_port=$(free_port)
reg=127.0.0.1:$reg_port
mkdir -p "$work/registry/data"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
  delete:
    enabled: true
http:
  addr: $reg
YAML
OTEL_TRACES_EXPORTER=none docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://$reg/v2/" 2>/dev/null && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry/log" >&2; echo "docker-registry exited" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "http://$reg/v2/" || { echo "docker-registry did not answer on $reg within 10 s" >&2; exit 1; }
skopeo copy --quiet --dest-tls-verify=false "oci:$BASE:base" "docker://$reg/library/debian:bookworm"
inspect() { skopeo inspect --raw --tls-verify=false "docker://$reg/$1"; }
inspect library/debian:bookworm >"$work/base.json"

push() { (cd "$work/kazoo" && $cli image --base "$reg/library/debian:bookworm" --push "$reg/kazoo:4.3.0" 2>"$work/push.err") ||
  { cat "$work/push.err" >&2; exit 1; }; }
t0=$(date +%s.%N); push >/dev/null; t1=$(date +%s.%N)
first_push=$(grep -o '[0-9]* bytes of blobs uploaded' "$work/push.err" | awk '{print $1}')
echo "first push: $first_push bytes uploaded ($(mib "$first_push") MiB), $(echo "$t1 - $t0" | bc) s"
inspect kazoo:4.3.0 >"$work/kazoo-1.json"
echo "// bench/image.sh: a code-only change" >>"$work/kazoo/apps/crossbar/src/app.js"
t0=$(date +%s.%N); push >/dev/null; t1=$(date +%s.%N)
second_push=$(grep -o '[0-9]* bytes of blobs uploaded' "$work/push.err" | awk '{print $1}')
inspect kazoo:4.3.0 >"$work/kazoo-2.json"
changed=$(new_layers "$work/kazoo-1.json" "$work/kazoo-2.json")
changed_bytes=$(echo "$changed" | awk '{s+=$2} END {print s+0}')
config2=$(sum_layers <"$work/kazoo-2.json" | awk '{print $2}')
manifest2=$(stat -c %s "$work/kazoo-2.json")
echo "second push (code-only change): $second_push bytes uploaded, $(echo "$t1 - $t0" | bc) s"
echo "  layers that changed: $(echo "$changed" | wc -l): $(echo "$changed" | tr '\n' ' ')"
echo "  goal: <= changed layer + config blob = $changed_bytes + $config2 = $((changed_bytes + config2)) bytes (+ the manifest, $manifest2 bytes, which is not a blob)"
if [ "$second_push" -le $((changed_bytes + config2)) ]; then echo "  met"; else echo "  MISSED by $((second_push - changed_bytes - config2)) bytes"; fi
hyperfine --runs 5 --export-markdown "$work/push.md" -n "push again, nothing changed" \
  "cd $work/kazoo && $cli image -q --base $reg/library/debian:bookworm --push $reg/kazoo:4.3.0" >/dev/null
tail -n +3 "$work/push.md"
node -e 'const fs=require("fs");const m=JSON.parse(fs.readFileSync(process.argv[1]));const t=["runtime","deps","code","config"];const base=JSON.parse(fs.readFileSync(process.argv[2])).layers.length;m.layers.forEach((l,i)=>console.log(`  layer ${i<base?"base":t[i-base]??i}: ${l.size} bytes ${l.digest.slice(0,19)}`));console.log(`  config blob: ${m.config.size} bytes`)' "$work/kazoo-2.json" "$work/base.json"

# --- 3. Sizes -------------------------------------------------------------------------------------
echo
echo "## 3. sizes"
(cd "$work/kazoo" && $cli tar -q >/dev/null)
tarball=$(stat -c %s "$work/kazoo/_rel/kazoo-4.3.0.tar.gz")
read -r base_layers _ base_n < <(sum_layers <"$work/base.json")
read -r kazoo_all _ _ < <(sum_layers <"$work/kazoo-2.json")
kazoo_own=$((kazoo_all - base_layers))
echo "| what | bytes | MiB |"
echo "|---|---:|---:|"
row() { printf '| %s | %s | %s |\n' "$1" "$2" "$(mib "$2")"; }
row "base (Debian bookworm, $base_n layer)" "$base_layers"
row "kazoo image, its own 4 layers" "$kazoo_own"
row "kazoo image, all layers" "$kazoo_all"
row "release tarball kazoo-4.3.0.tar.gz" "$tarball"
row "tarball + base" "$((tarball + base_layers))"

# bench/app: a noderel release, imaged by noderel ...
app_port=$(free_port)
while [ "$app_port" = "$reg_port" ]; do app_port=$(free_port); done
cp -r bench/app "$work/app"
(cd "$work/app" && $cli init --port "$app_port" --runtime "$RUNTIME" >/dev/null &&
  $cli image -q --base "$reg/library/debian:bookworm" --push "$reg/bench/benchapp:1" --oci-layout "$work/benchapp-img:1" >/dev/null)
inspect bench/benchapp:1 >"$work/benchapp.json"
node_bin=$work/app/_rel/benchapp/node-$RUNTIME/bin/node

# ... and by containerify, on the same base plus the same node binary as a layer
node bench/image/node-base.mjs "$BASE" base "$node_bin" "$work/node-base" node >"$work/node-layer"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/node-base:node" "docker://$reg/bench/node:$RUNTIME"
inspect "bench/node:$RUNTIME" >"$work/node-base.json"
npm install --no-audit --no-fund --prefix "$work/containerify" "$CONTAINERIFY_SPEC" >"$work/npm-install.log" 2>&1 ||
  { cat "$work/npm-install.log" >&2; echo "npm install $CONTAINERIFY_SPEC failed" >&2; exit 1; }
cfy_vsn=$(node -p "require('$work/containerify/node_modules/containerify/package.json').version")
mkdir "$work/capp"
cp bench/app/app.js bench/app/package.json "$work/capp/"
cfy_start=$(date +%s.%N)
if timeout 300 node "$work/containerify/node_modules/containerify/lib/cli.js" \
  --fromImage "bench/node:$RUNTIME" --toImage bench/capp:1 --registry "http://$reg/v2/" --allowNoPushAuth --doCrossMount \
  --folder "$work/capp" --entrypoint "node app.js" --setTimeStamp 1980-01-01T00:00:00Z \
  --buildFolder "$work/cfy-build" --layerCacheFolder "$work/cfy-cache" >"$work/containerify.log" 2>&1; then
  cfy_end=$(date +%s.%N)
  echo "containerify $cfy_vsn: $(echo "$cfy_end - $cfy_start" | bc) s"
  peer=bench/capp:1
  peer_label="containerify $cfy_vsn"
else
  echo "containerify $cfy_vsn failed:" >&2
  tail -20 "$work/containerify.log" >&2
  exit 1
fi
inspect "$peer" >"$work/peer.json"
read -r app_all _ app_n < <(sum_layers <"$work/benchapp.json")
read -r nodebase_all _ _ < <(sum_layers <"$work/node-base.json")
read -r peer_all _ peer_n < <(sum_layers <"$work/peer.json")
echo
echo "| bench/app image | layers | all layers, bytes | MiB | on top of the Debian base | MiB | on top of base + node |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '| noderel image | %s | %s | %s | %s | %s | |\n' "$app_n" "$app_all" "$(mib "$app_all")" "$((app_all - base_layers))" "$(mib $((app_all - base_layers)))"
printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$peer_label" "$peer_n" "$peer_all" "$(mib "$peer_all")" "$((peer_all - base_layers))" "$(mib $((peer_all - base_layers)))" "$((peer_all - nodebase_all))"
echo "node layer of the peer's base: $(cat "$work/node-layer")"
node -e 'const fs=require("fs");for(const f of process.argv.slice(1)){const m=JSON.parse(fs.readFileSync(f));console.log(f.split("/").pop()+": "+m.layers.map(l=>l.size).join(" + "))}' "$work/benchapp.json" "$work/peer.json"

# --- 4. Container start until the port answers ----------------------------------------------------
echo
echo "## 4. container start until the port answers (runc, host network, $WARMUP warmup + $RUNS rounds, taking turns)"
skopeo copy --quiet --src-tls-verify=false "docker://$reg/$peer" "oci:$work/peer-img:1"
mkdir -p "$runc_root" "$work/bundles"
umoci unpack --image "$work/benchapp-img:1" "$work/bundles/noderel" >/dev/null
umoci unpack --image "$work/peer-img:1" "$work/bundles/peer" >/dev/null
for b in noderel peer; do
  node -e '
    const fs = require("fs"); const f = process.argv[1] + "/config.json";
    const c = JSON.parse(fs.readFileSync(f));
    c.linux.namespaces = c.linux.namespaces.filter((ns) => ns.type !== "network");
    c.process.terminal = false;
    c.process.env = (c.process.env || []).filter((e) => !e.startsWith("PORT=")).concat("PORT=" + process.argv[2]);
    for (const m of ["/etc/hosts", "/etc/resolv.conf"]) c.mounts.push({ destination: m, type: "bind", source: m, options: ["rbind", "ro"] });
    fs.writeFileSync(f, JSON.stringify(c, null, 2));
    console.error(process.argv[1].split("/").pop() + ": user " + JSON.stringify(c.process.user) + ", args " + JSON.stringify(c.process.args) + ", cwd " + c.process.cwd);
  ' "$work/bundles/$b" "$app_port"
done
cat >"$work/spec.json" <<JSON
{"runcRoot": "$runc_root", "warmup": $WARMUP, "runs": $RUNS, "cases": [
  {"name": "noderel image: bin/benchapp foreground", "bundle": "$work/bundles/noderel", "port": $app_port},
  {"name": "$peer_label image: node app.js", "bundle": "$work/bundles/peer", "port": $app_port}]}
JSON
echo "| case | mean ± sd, ms | median | min .. max | runs |"
echo "|---|---:|---:|---:|---:|"
node bench/image/start-timer.mjs "$work/spec.json" "$work/start.json" &
timer_pid=$!
wait "$timer_pid"
timer_pid=
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
