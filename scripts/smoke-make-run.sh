#!/usr/bin/env bash
# Smoke test of `make run` as a newcomer gets it: a fresh clone of this checkout's
# HEAD, no DATABASE_URL / CELERY_BROKER_URL (so SQLite and the filesystem broker),
# then the admin login page, the API docs and schema and a static file must answer
# 200, and a ping task must go through the embedded broker to the worker and back.
set -euo pipefail

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
clone=$work/serversync
log=$work/make-run.log
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
startup_limit=${SMOKE_STARTUP_SECONDS:-300}

say() { echo "smoke: $*" >&2; }
# The embedded defaults: no server settings or keys from the caller's environment.
embedded=(env -u DATABASE_URL -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND -u SECRET_KEY -u SECRET_KEY_FILE
    -u CREDENTIAL_KEYS -u CREDENTIAL_KEYS_FILE -u SERVERSYNC_DATA_DIR -u MEDIA_ROOT HOST=127.0.0.1 PORT="$port")
# status_of PATH: the HTTP status of GET PATH, or 0 when nothing answers.
status_of() {
    python3 - "http://127.0.0.1:$port$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).status)
except urllib.error.HTTPError as error:
    print(error.code)
except OSError:
    print(0)
PY
}

run_pid=
# Stop make run and everything it started: its own process group, and the process
# groups honcho made for web, worker and beat (honcho logs their pids). SIGTERM, not
# SIGINT: a background job starts with SIGINT ignored. Whatever is left after 20 s is killed.
stop_make_run() {
    local groups=("$run_pid" $(sed -n 's/.* started (pid=\([0-9]*\)).*/\1/p' "$log")) group alive
    say "stopping make run (SIGTERM to ${#groups[@]} process groups)"
    kill -TERM -- "-$run_pid" 2>/dev/null || true
    for _ in $(seq 20); do
        alive=0
        for group in "${groups[@]}"; do kill -0 -- "-$group" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 1
    done
    for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
cleanup() {
    local status=$?
    [[ -z $run_pid ]] || stop_make_run
    if [[ $status != 0 ]]; then
        say "FAILED; last lines of make run's output:"
        tail -n 60 "$log" >&2 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

say "cloning $repo into $clone"
git clone --quiet "$repo" "$clone"

say "starting make run on port $port (log: $log)"
# setsid: make and what it starts get a process group of their own, stopped as one (like Ctrl-C).
"${embedded[@]}" setsid make --no-print-directory -C "$clone" run </dev/null >"$log" 2>&1 &
run_pid=$!

say "waiting up to ${startup_limit}s for http://127.0.0.1:$port/admin/login/"
deadline=$((SECONDS + startup_limit))
until [[ $(status_of /admin/login/) == 200 ]]; do
    kill -0 "$run_pid" 2>/dev/null || { say "make run exited early"; exit 1; }
    ((SECONDS < deadline)) || { say "no answer within ${startup_limit}s"; exit 1; }
    sleep 2
done
say "web app is up after ${SECONDS}s"

failed=0
for path in /admin/login/ /api/docs/ /api/schema/ /static/admin/css/base.css; do
    code=$(status_of "$path")
    say "GET $path -> $code"
    [[ $code == 200 ]] || failed=1
done
((failed == 0)) || { say "a page did not answer 200"; exit 1; }

say "sending a ping task through the embedded broker"
"${embedded[@]}" make --no-print-directory -C "$clone" manage CMD='ping_worker --timeout 60'

say "OK: make run serves the admin and the API docs, and the worker answers"
