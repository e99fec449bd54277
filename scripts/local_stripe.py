"""Run localstripe, the fake Stripe server, for `make run`: on 127.0.0.1 only, in memory only.

Usage: python scripts/local_stripe.py PORT

localstripe's own command listens on every network interface and saves its whole
store to /tmp/localstripe.pickle after every write. Here it answers this machine
only and forgets everything when it stops (`make run` wires it again at every start).
Ctrl-C or TERM stops it.
"""

import logging
import sys

from aiohttp import web
from localstripe import resources
from localstripe.server import app


def main() -> None:
    """Serve localstripe's API on 127.0.0.1:PORT, logging requests and webhook deliveries."""
    resources.Store.dump_to_disk = lambda self: None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]))


if __name__ == "__main__":
    main()
