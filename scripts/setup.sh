#!/usr/bin/env bash
# Installs what Jiffy needs on a Debian machine (as root) and builds it. Idempotent: fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages, installed only where missing. Each is named for what needs it.
pkgs=(
  build-essential      # native launcher (gcc, make)
  libjansson-dev       # launcher's JSON parser for OCI config.json
  busybox-static       # runtime-images/busybox
  python3.11-minimal libpython3.11-stdlib  # runtime-images/python copies Debian's /usr/bin/python3.11 + stdlib
  redis-server         # queue (jiffy up starts a private one when REDIS_URL is unset)
  crun runc bubblewrap # side-by-side boot benchmarks and interop
  skopeo umoci         # image interop tests (save/load, OCI layout)
  docker-registry      # local registry for pull/push tests (127.0.0.1 only)
  apache2-utils        # htpasswd -B for the registry basic-auth test
  hyperfine            # whole-command benchmarks
  iproute2 util-linux kmod jq
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "jiffy setup: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start services we do not want running behind our tests' backs.
  for svc in redis-server docker-registry; do
    (systemctl stop "$svc" || service "$svc" stop) >/dev/null 2>&1 || true
  done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install --no-save` installs what package-lock.json pins and never rewrites it. Not
  # `npm ci`: the lock names optional per-platform binaries of msgpackr-extract (darwin, win32,
  # linux-arm) that npm does not record on linux-x64, and `npm ci` then refuses the lock as out of sync.
  say "npm install (from package-lock.json)"
  npm install --no-save --no-audit --no-fund --loglevel=error
fi

say "build (native launcher + TypeScript)"
make -s -C native

npx tsc -p tsconfig.json
