#!/usr/bin/env bash
# The README's main command (`npm run demo`): set up, build the runtime images, start `jiffy up`
# (private Redis + gateway + worker) on a temp store, deploy the example functions from examples/,
# invoke them over HTTP (sync, async + poll, raw HTTP), then stop everything cleanly.
# Needs root (namespaces, cgroups, overlayfs). JIFFY_ROOT keeps the store between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "the demo needs root (namespaces, cgroups, overlayfs): run sudo npm run demo" >&2
  exit 1
fi

bash scripts/setup.sh
jiffy() { node dist/src/cli/main.js --root "$ROOT" "$@"; }

KEEP_ROOT=${JIFFY_ROOT:-}
ROOT=${JIFFY_ROOT:-$(mktemp -d /tmp/jiffy-demo-XXXXXX)}
export JIFFY_LOG_LEVEL=${JIFFY_LOG_LEVEL:-warn}
unset REDIS_URL

say "runtime images (built once from this machine's files, then cached)"
jiffy build-runtime all

say "jiffy up (store $ROOT)"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
UPLOG=$(mktemp /tmp/jiffy-demo-up-XXXXXX.log)
# Started directly (not through the shell function) so $! is node itself and gets our SIGTERM.
node dist/src/cli/main.js --root "$ROOT" up --port "$PORT" >"$UPLOG" 2>&1 &
UP_PID=$!
cleanup() {
  if kill -0 "$UP_PID" 2>/dev/null; then
    say "stopping jiffy up (SIGTERM)"
    kill -TERM "$UP_PID"
    wait "$UP_PID" || true
  fi
  if grep -q " $ROOT" /proc/self/mounts; then echo "demo: mounts left under $ROOT:" >&2; grep " $ROOT" /proc/self/mounts >&2; fi
  rm -f "$UPLOG"
  [ -n "$KEEP_ROOT" ] || rm -rf "$ROOT" || true
}
trap cleanup EXIT
for _ in $(seq 1 200); do grep -q 'jiffy is up' "$UPLOG" && break; kill -0 "$UP_PID" 2>/dev/null || { cat "$UPLOG" >&2; exit 1; }; sleep 0.05; done
cat "$UPLOG"
export JIFFY_URL="http://127.0.0.1:$PORT"

say "deploy three functions from examples/"
show "jiffy deploy hello examples/hello-node --runtime node --min-warm 1"
jiffy deploy hello examples/hello-node --runtime node --min-warm 1
show "jiffy deploy hello-py examples/hello-python --runtime python"
jiffy deploy hello-py examples/hello-python --runtime python
show "jiffy deploy hello-sh examples/hello-exec --runtime exec"
jiffy deploy hello-sh examples/hello-exec --runtime exec
jiffy fn ls

say "sync invokes over HTTP"
for fn in hello hello-py hello-sh; do
  show "curl -X POST $JIFFY_URL/v1/functions/$fn/invoke -d '{\"name\":\"demo\"}'"
  curl -sS -D - -o /tmp/jiffy-demo-body.$$ -X POST "$JIFFY_URL/v1/functions/$fn/invoke" -H 'content-type: application/json' -d '{"name":"demo"}' | grep -i '^x-jiffy-\(cold-start\|duration\)' || true
  cat /tmp/jiffy-demo-body.$$; echo
done
rm -f /tmp/jiffy-demo-body.$$
show "jiffy invoke hello -d '{\"name\":\"again\"}' -v   (warm now)"
jiffy invoke hello -d '{"name":"again"}' -v

say "async invoke, then poll the result"
show "curl -X POST '$JIFFY_URL/v1/functions/hello-py/invoke?mode=async' -d '{\"name\":\"later\"}'"
ID=$(curl -sS -X POST "$JIFFY_URL/v1/functions/hello-py/invoke?mode=async" -d '{"name":"later"}' | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>console.log(JSON.parse(s).id))')
echo "queued: $ID"
for _ in $(seq 1 100); do
  REC=$(curl -sS "$JIFFY_URL/v1/invocations/$ID")
  case "$REC" in *'"status":"succeeded"'*|*'"status":"failed"'*) break ;; esac
  sleep 0.05
done
show "curl $JIFFY_URL/v1/invocations/$ID"
echo "$REC" | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>console.log(JSON.stringify(JSON.parse(s),null,2)))'

say "raw HTTP: method, path, query and body reach the function; its status and headers come back"
show "curl -i -X POST '$JIFFY_URL/fn/hello/greet/you?lang=en' -d 'hi'"
curl -sS -i -X POST "$JIFFY_URL/fn/hello/greet/you?lang=en" -d 'hi' | grep -iv '^\(date\|connection\|keep-alive\)'

say "a failing call shows a clear error"
show "curl -X POST $JIFFY_URL/v1/functions/nope/invoke"
curl -sS -X POST "$JIFFY_URL/v1/functions/nope/invoke"; echo

say "done: stopping everything"
