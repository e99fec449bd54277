#!/bin/sh
# `make run`: migrate, seed the demo data if the database is empty, then the
# development server, the background worker and a fake Stripe server in one terminal.
# Usage: scripts/run-dev.sh PYTHON HOST:PORT   (with DJANGO_DEBUG=1 in the environment)
#
# Fake Stripe: unless LOCAL_STRIPE=0 or STRIPE_API_BASE is set (then you chose a
# Stripe yourself), localstripe runs on a free port of 127.0.0.1, in memory only
# (scripts/local_stripe.py), logging to LOCAL_STRIPE_LOG (default
# var/localstripe.log); `manage.py use_local_stripe` gives the demo
# conference its keys and registers the fake's webhook; the site and the worker
# get STRIPE_API_BASE pointing at it. When that command refuses (the demo
# conference has keys of its own, or there is no demo conference), the fake is
# stopped again and the site talks to Stripe.
#
# Ctrl-C stops everything. The worker (`manage.py run_worker`: tasks and the
# periodic jobs) runs in a loop of its own in a process group of its own (set -m),
# and so does localstripe, so the terminal's Ctrl-C reaches only the server. The
# loop restarts the worker 2 s after it exits (it exits when the database goes
# away, as in production where Docker or systemd restart it). When the server has
# stopped (Ctrl-C, or it failed to start), the EXIT trap sends one TERM to the
# loop, which passes it to the worker (it exits after the task in hand) and
# stops, to localstripe and to the link printer, and waits for them. No process
# is left behind.
set -eu
python="$1"
address="$2"
host="${address%:*}"
port="${address##*:}"
case "$host" in
    0.0.0.0 | "") host=127.0.0.1 ;;
esac
site_url="http://$host:$port"
export BACKOFFICE_SITE_URL="${BACKOFFICE_SITE_URL:-$site_url}"

"$python" manage.py migrate --noinput
"$python" manage.py seed_demo --if-empty

worker=""
stripe=""
links=""
stop_all() {
    for pid in $links $worker $stripe; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $links $worker $stripe; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT TERM
# The terminal closed: the worker and the fake, in process groups of their own, get
# no hang-up from it, so stop them as on Ctrl-C.
trap 'exit 129' HUP

if [ "${LOCAL_STRIPE:-1}" = 0 ]; then
    echo "LOCAL_STRIPE=0: no fake Stripe server; card payments go to Stripe."
elif [ -n "${STRIPE_API_BASE:-}" ]; then
    echo "STRIPE_API_BASE=$STRIPE_API_BASE is set: no fake Stripe server started."
else
    stripe_port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    stripe_log="${LOCAL_STRIPE_LOG:-var/localstripe.log}"
    mkdir -p "$(dirname "$stripe_log")"
    set -m
    "$python" scripts/local_stripe.py "$stripe_port" >"$stripe_log" 2>&1 &
    stripe=$!
    set +m
    api_base="http://127.0.0.1:$stripe_port"
    if "$python" manage.py use_local_stripe --api-base "$api_base" --site-url "$site_url"; then
        export STRIPE_API_BASE="$api_base"
        echo "Fake Stripe server (localstripe) at $api_base; its log is $stripe_log."
    else
        echo "Not using the fake Stripe server: card payments go to Stripe." >&2
        kill -TERM "$stripe" 2>/dev/null || true
        wait "$stripe" 2>/dev/null || true
        # Started under set -m, it is a job: the shell would announce "[1] + Done" at the
        # next `set -m`. Asking for the jobs list takes that notice, silently.
        jobs >/dev/null 2>&1 || true
        stripe=""
    fi
fi

keep_worker_running() {
    child=""
    stopping=""
    trap 'stopping=1; if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; exit 0; fi' TERM
    while [ -z "$stopping" ]; do
        "$python" manage.py run_worker --no-reload &
        child=$!
        if [ -n "$stopping" ]; then # the TERM came before $child was set: stop it here
            kill -TERM "$child" 2>/dev/null || true
            wait "$child" || true
            exit 0
        fi
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

# Once the site answers and the worker has printed what the queue held (a fresh
# database's demo e-mails): the admin, a pay link and the demo logins, last.
"$python" manage.py show_demo_links --site-url "$site_url" --wait 120 --wait-for-worker 90 &
links=$!

"$python" manage.py runserver "$address"
