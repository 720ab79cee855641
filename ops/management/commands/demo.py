"""``manage.py demo`` (``make demo``): a guided tour of a running system (``make run``).

1. Books a tour as the demo user over HTTP, with a correlation id of its own, and prints the
   journey as the processes record it, with the time of each step since the request was sent:
   HTTP 201 -> outbox row -> RabbitMQ -> email / SMS sent -> Kafka -> availability applied.
2. Unless ``--no-outage``: stops RabbitMQ (``scripts/services stop rabbitmq``, the node keeps
   running, only the app stops), books again, shows the RabbitMQ backlog growing while Kafka keeps
   delivering, starts RabbitMQ and shows the backlog drain: every booking reaches RabbitMQ and its
   notifications go out, nothing lost. RabbitMQ is started again whatever happens.

``--banner`` only prints the URLs and credentials of ``make run``. Development only: it signs in
with ``DEMO_USERNAME`` / ``DEMO_PASSWORD``, which exist only where ``seed_demo`` created them.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ops.selectors import JOURNEY_STEPS, booking_journey, outbox_backlog

_PHONE = "+33612345678"  # a demo number: the SMS backend only logs (masked) in development


def http_json(method: str, url: str, *, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One JSON request; returns (status, parsed body). Connection errors raise ``OSError``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - the URL is the operator's --url
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - see above
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:
            return error.code, raw.decode(errors="replace")


def banner_lines() -> list[str]:
    """What ``make run`` prints: every URL, and the credentials that really work here."""
    base = "http://127.0.0.1:8000"
    if settings.PRODUCTION:
        admin = "no demo accounts in production (manage.py createsuperuser)"
        customer = ""
    else:
        admin = f"sign in as {settings.DEMO_ADMIN_USERNAME} / {settings.DEMO_ADMIN_PASSWORD}"
        customer = (
            f"  demo customer {settings.DEMO_USERNAME} / {settings.DEMO_PASSWORD} (API token: seed_demo's output)"
        )
    lines = [
        f"API {base}/api/   docs {base}/api/docs/   admin {base}/admin/ ({admin})",
        f"ops dashboard {base}/admin/ops/dashboard/   Flower {settings.FLOWER_URL}   "
        f"RabbitMQ {settings.RABBITMQ_MANAGEMENT_URL}",
        "guided tour: make demo (in another terminal)",
    ]
    if customer:
        lines.insert(1, customer)
    return lines


class Command(BaseCommand):
    help = "Guided tour: book a tour over HTTP and follow it through every process; then a RabbitMQ outage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where `make run` serves the API")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each stage")
        parser.add_argument("--no-outage", action="store_true", help="skip the RabbitMQ outage part")
        parser.add_argument("--outage-bookings", type=int, default=3, help="bookings made while RabbitMQ is down")
        parser.add_argument("--banner", action="store_true", help="only print the URLs and credentials")

    def handle(self, *args: object, **options: Any) -> None:
        if options["banner"]:
            for line in banner_lines():
                self.stdout.write(line)
            return
        if settings.PRODUCTION:
            raise CommandError("the demo signs in with the demo user's known password: development only")
        self.base = options["url"].rstrip("/")
        self.timeout = options["timeout"]
        self._require_running()
        token = self._sign_in()
        self.stdout.write(self.style.MIGRATE_HEADING("1. One booking, followed by its correlation id"))
        journey = self._book_and_follow(token)
        if options["no_outage"]:
            self.stdout.write("(RabbitMQ outage part skipped: --no-outage)")
        else:
            self.stdout.write(self.style.MIGRATE_HEADING("2. RabbitMQ goes down: bookings still succeed"))
            self._outage(token, count=options["outage_bookings"])
        self.stdout.write(self.style.SUCCESS(f"done; admin view of the first booking: {journey['admin_url']}"))

    # ---------------------------------------------------------------- steps
    def _require_running(self) -> None:
        try:
            status, _ = http_json("GET", f"{self.base}/health/live")
        except OSError as exc:
            raise CommandError(
                f"nothing answers at {self.base} ({exc}): start the system with `make run` first"
            ) from exc
        if status != 200:
            raise CommandError(f"{self.base}/health/live answered {status}: is `make run` healthy?")

    def _sign_in(self) -> str:
        credentials = {"username": settings.DEMO_USERNAME, "password": settings.DEMO_PASSWORD}
        status, body = http_json("POST", f"{self.base}/api/auth/token/", body=credentials)
        if status != 200:
            raise CommandError(f"demo user sign-in answered {status}: run `manage.py seed_demo` (make run does)")
        return str(body["token"])

    def _departure_ids(self) -> list[int]:
        """Upcoming departures with free seats, the demo tour's first, most free seats first."""
        status, body = http_json("GET", f"{self.base}/api/tours/")
        tours = body.get("results", body) if isinstance(body, dict) else body
        if status != 200 or not tours:
            raise CommandError(f"GET /api/tours/ answered {status} with no tour: run `manage.py seed_demo`")
        departures = [
            (tour.get("slug") != "paris-city-tour", -departure["seats_left"], departure["id"])
            for tour in tours
            for departure in tour.get("departures", [])
            if departure.get("seats_left", 0) > 0
        ]
        return [departure_id for *_, departure_id in sorted(departures)]

    def _book(self, token: str, *, correlation_id: str) -> tuple[dict[str, Any], float]:
        """Book one seat; returns the booking and the wall-clock time the request was sent."""
        refused: list[str] = []
        for departure_id in self._departure_ids()[:5]:
            sent = time.time()
            status, body = http_json(
                "POST",
                f"{self.base}/api/bookings/",
                body={"departure_id": departure_id, "seats": 1, "tier": "standard", "contact_phone": _PHONE},
                headers={"Authorization": f"Token {token}", "X-Correlation-ID": correlation_id},
            )
            if status == 201:
                return body, sent
            refused.append(f"departure {departure_id}: HTTP {status} {body}")
        raise CommandError("no booking accepted: " + "; ".join(refused or ["no departure with free seats"]))

    def _book_and_follow(self, token: str) -> dict[str, Any]:
        correlation_id = f"demo-{uuid.uuid4().hex[:12]}"
        self.stdout.write(f"POST /api/bookings/ as {settings.DEMO_USERNAME}, X-Correlation-ID: {correlation_id}")
        booking, sent = self._book(token, correlation_id=correlation_id)
        answered = time.time()
        self._step(f"HTTP 201: booking {booking['id']} ({booking.get('tour_name', '')})", answered - sent)
        shown: set[str] = set()
        deadline = time.monotonic() + self.timeout
        while len(shown) < len(JOURNEY_STEPS) and time.monotonic() < deadline:
            steps = booking_journey(correlation_id=correlation_id)
            reached = sorted(
                ((moment, key) for key, moment in steps.items() if key in dict(JOURNEY_STEPS) and moment),
                key=lambda item: item[0],
            )
            for moment, key in reached:
                if key not in shown:
                    shown.add(key)
                    self._step(dict(JOURNEY_STEPS)[key], moment.timestamp() - sent)
            time.sleep(0.2)
        missing = [label for key, label in JOURNEY_STEPS if key not in shown]
        if missing:
            self.stdout.write(self.style.WARNING(f"not seen within {self.timeout:g} s: {', '.join(missing)}"))
        self.stdout.write(f"every log line of this booking carries [{correlation_id}]")
        return {"admin_url": f"{self.base}/admin/messaging/outboxevent/?q={correlation_id}"}

    def _outage(self, token: str, *, count: int) -> None:
        self._services("stop", "rabbitmq")
        try:
            self.stdout.write("RabbitMQ stopped (scripts/services stop rabbitmq)")
            correlation_ids = [f"demo-outage-{uuid.uuid4().hex[:10]}" for _ in range(count)]
            for correlation_id in correlation_ids:
                booking, sent = self._book(token, correlation_id=correlation_id)
                self._step(f"HTTP 201 while RabbitMQ is down: booking {booking['id']}", time.time() - sent)
            self._watch_backlog(until=lambda b: b.get("rabbitmq", {}).get("pending", 0) >= count, seconds=10)
        finally:
            self._services("start", "rabbitmq")
            self.stdout.write("RabbitMQ started again (scripts/services start rabbitmq)")
        self._watch_backlog(until=lambda b: b.get("rabbitmq", {}).get("pending", 0) == 0, seconds=self.timeout)
        self._nothing_lost(correlation_ids)

    def _nothing_lost(self, correlation_ids: list[str]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            journeys = [booking_journey(correlation_id=cid) for cid in correlation_ids]
            missing = [j["booking_id"] for j in journeys if not (j["rabbitmq"] and j["kafka"] and j["email"])]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if missing:
            raise CommandError(f"bookings {missing} not through within {self.timeout:g} s: see the ops dashboard")
        self.stdout.write(
            self.style.SUCCESS(
                f"nothing lost: {len(correlation_ids)}/{len(correlation_ids)} bookings delivered to RabbitMQ and "
                "Kafka, their emails sent"
            )
        )

    # ---------------------------------------------------------------- output and helpers
    def _step(self, label: str, seconds: float) -> None:
        self.stdout.write(f"  {seconds * 1000:>8.0f} ms  {label}")

    def _watch_backlog(self, *, until: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        last = None
        while True:
            backlog = outbox_backlog()
            line = "  backlog: " + "  ".join(
                f"{destination} {stats['pending']} pending"
                + (
                    f" (oldest {stats['oldest_pending_age_seconds']:.1f} s)"
                    if stats["oldest_pending_age_seconds"]
                    else ""
                )
                for destination, stats in sorted(backlog.items())
            )
            if line != last:
                self.stdout.write(f"{_clock()}{line}")
                last = line
            if until(backlog) or time.monotonic() > deadline:
                return
            time.sleep(0.5)

    def _services(self, action: str, name: str) -> None:
        script = settings.BASE_DIR / "scripts" / "services"
        result = subprocess.run(["bash", str(script), action, name], capture_output=True, text=True, timeout=180)  # noqa: S603, S607 - our own script
        if result.returncode != 0:
            raise CommandError(f"scripts/services {action} {name} failed: {result.stderr[-500:]}")


def _clock() -> str:
    moment: datetime = timezone.localtime()
    return moment.strftime("%H:%M:%S")
