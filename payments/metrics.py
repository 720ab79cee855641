"""Payment metrics (registered once, exposed by the web process's ``/metrics`` like the others)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from tourapp.metrics import LATENCY_BUCKETS

PAYMENTS_CAPTURED = Counter("tourapp_payments_captured_total", "Charges captured", ["currency"])
PAYMENTS_DECLINED = Counter("tourapp_payments_declined_total", "Charges declined (booking compensated)", ["currency"])
PAYMENTS_REFUNDED = Counter("tourapp_payments_refunded_total", "Refunds made", ["currency"])
PAYMENTS_DEAD = Counter("tourapp_payments_dead_total", "Payments that ran out of retries", ["kind"])
PAYMENT_GATEWAY_LATENCY = Histogram(
    "tourapp_payment_gateway_seconds",
    "One gateway call (charge or refund), by outcome",
    ["operation", "outcome"],
    buckets=LATENCY_BUCKETS,
)
