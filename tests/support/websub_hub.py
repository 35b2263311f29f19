"""A real WebSub hub for the tests: flask-websub's Hub (from PyPI, installed by
scripts/websub-hub-venv) in a Flask app on 127.0.0.1:PORT/hub, its subscriptions in the SQLite
file DB. Celery runs the hub's tasks eagerly in this process (no broker): a subscription is
verified with the subscriber before the hub answers 202, and `hub.mode=publish&hub.topic=TOPIC`
(PUBLISH_SUPPORTED) fetches the topic and pushes it, signed, to every subscriber before the
answer. Prints `websub hub ready on PORT` once it listens, and `stored LEASE CALLBACK` for
every subscription it stores.

usage: websub_hub.py PORT DB MIN_LEASE_SECONDS
"""

import os
import sys

# Loopback only: never send the hub's requests through a proxy from the environment.
os.environ["NO_PROXY"] = "*"
os.environ["no_proxy"] = "*"

from celery import Celery  # noqa: E402
from flask import Flask  # noqa: E402
from flask_websub.hub import Hub, SQLite3HubStorage  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402


class Storage(SQLite3HubStorage):
    """The hub's SQLite storage, announcing every subscription it stores (after the subscriber
    confirmed its intent) on stdout: `stored LEASE_SECONDS CALLBACK`."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        print(f"stored {value['lease_seconds']} {key[1]}", flush=True)


def main():
    port, db, min_lease = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    celery = Celery("websub_hub", broker="memory://", backend="cache+memory://")
    celery.conf.task_always_eager = True
    # A task that fails (a topic that cannot be fetched, a push no subscriber took) fails the
    # request that ran it: HTTP 500, the traceback on stderr.
    celery.conf.task_eager_propagates = True
    options = {
        "PUBLISH_SUPPORTED": True,
        "SIGNATURE_ALGORITHM": "sha512",
        "HUB_MIN_LEASE_SECONDS": min_lease,
        "HUB_DEFAULT_LEASE_SECONDS": max(min_lease, 600),
        "HUB_MAX_LEASE_SECONDS": max(min_lease, 86400),
        "REQUEST_TIMEOUT": 10,
        # A failed push is tried again at once (eager tasks ignore the countdown), twice.
        "MAX_ATTEMPTS": 2,
    }
    app = Flask("websub_hub")
    # The blueprint reads the publish switch and lease bounds from the app's config, the tasks
    # read the rest from the hub's.
    app.config.update(options)
    hub = Hub(Storage(db), celery, **options)
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"websub hub ready on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
