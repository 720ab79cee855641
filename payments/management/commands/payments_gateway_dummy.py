"""Run the dummy payment gateway (``payments.dummy_gateway``) until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from payments.dummy_gateway import dummy_gateway_server


class Command(BaseCommand):
    help = "Serve the deterministic dummy payment gateway over HTTP (development and tests)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--db", default=settings.PAYMENTS_DUMMY_DB, help="SQLite file of the operations")
        parser.add_argument("--hang-seconds", type=float, default=10.0, help="tok_timeout: delay of the first answer")
        parser.add_argument("--slow-seconds", type=float, default=0.5, help="tok_slow: delay of every answer")

    def handle(self, *args: Any, **options: Any) -> None:
        server = dummy_gateway_server(
            host=options["host"],
            port=options["port"],
            db_path=options["db"],
            hang_seconds=options["hang_seconds"],
            slow_seconds=options["slow_seconds"],
        )

        def stop(*_: Any) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"dummy payment gateway listening on http://{options['host']}:{server.server_port}")
        self.stdout.flush()
        server.serve_forever()
        server.server_close()
