#!/bin/sh
# `make run`: the development server and the background worker in one terminal.
# Usage: scripts/run-dev.sh PYTHON HOST:PORT
#
# Ctrl-C stops both. The worker (`manage.py run_worker`: tasks and the periodic
# jobs) runs in a loop of its own in a process group of its own (set -m), so the
# terminal's Ctrl-C reaches only the server. The loop restarts the worker 2 s
# after it exits (it exits when the database goes away, as in production where
# Docker or systemd restart it). When the server has stopped (Ctrl-C, or it
# failed to start), the loop gets one TERM here: it passes it to the worker,
# which exits after the task in hand, and stops. No process is left behind.
set -eu
python="$1"
address="$2"

keep_worker_running() {
    child=""
    trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; fi; exit 0' TERM
    while :; do
        "$python" manage.py run_worker --no-reload &
        child=$!
        status=0
        wait "$child" || status=$?
        child=""
        echo "Background worker exited (status $status); restarting it in 2 s." >&2
        sleep 2
    done
}

set -m
keep_worker_running &
worker=$!
set +m

trap 'kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

"$python" manage.py runserver "$address"
