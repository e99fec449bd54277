#!/bin/sh
# `make run`: the development server and the background worker in one terminal.
# Usage: scripts/run-dev.sh PYTHON HOST:PORT
#
# Ctrl-C stops both. The worker is started in a process group of its own (set -m),
# so the terminal's Ctrl-C reaches only the server; when the server has stopped
# (Ctrl-C, or it failed to start), the worker gets one TERM here and exits after
# the task in hand, as it does in production. No process is left behind.
set -eu
python="$1"
address="$2"

set -m
"$python" manage.py db_worker --no-reload &
worker=$!
set +m

trap 'kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

"$python" manage.py runserver "$address"
