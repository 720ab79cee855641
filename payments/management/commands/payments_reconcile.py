"""Compare bookings, payments and the gateway's records; print every mismatch; exit 1 if any."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.dateparse import parse_datetime

from payments.gateway import gateway_get
from payments.selectors import payments_reconcile


class Command(BaseCommand):
    help = "Reconcile bookings, payments and gateway records; exit status 1 when anything disagrees."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", help="ISO datetime: bookings from then on must have a charge")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        since = parse_datetime(options["since"]) if options["since"] else None
        report = payments_reconcile(gateway_records=gateway_get().records(), since=since)
        if options["json"]:
            self.stdout.write(json.dumps(asdict(report), default=str))
        else:
            self.stdout.write(
                f"bookings {report.bookings}, captured {report.charges_captured}, declined {report.charges_declined}, "
                f"refunds {report.refunds}, pending {report.pending}, gateway charges {report.gateway_charges}, "
                f"mismatches {len(report.mismatches)}"
            )
            for mismatch in report.mismatches:
                self.stdout.write(f"MISMATCH {mismatch.code} booking={mismatch.booking_id}: {mismatch.detail}")
        if report.mismatches:
            sys.exit(1)
