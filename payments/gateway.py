"""The payment gateway boundary: what a provider adapter implements, and the HTTP client of the dummy.

An adapter (Stripe PaymentIntents, Adyen, ...) implements :class:`PaymentGateway`. Every call
carries an idempotency key: the provider returns the SAME charge or refund for a key it has
seen, so a retry after a lost response, a redelivered message or a killed worker never moves
money twice. Amounts are integers in the currency's minor unit.

Errors are split by what the caller may do about them:

- :class:`PaymentDeclined`: a definitive "no" (card declined); never retried;
- :class:`TransientGatewayError`: timeout, refused connection, 5xx, 429; retried with backoff;
  the operation may or may not have happened, which the idempotency key makes harmless;
- :class:`PermanentGatewayError`: the request itself is wrong (4xx); retrying cannot help, a
  human must look (the payment goes "dead").
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings

# ISO 4217 currencies without a minor unit (the rest of ours have two decimals).
_ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "XAF", "XOF"})


def amount_to_minor(*, amount: Decimal, currency: str) -> int:
    """``Decimal("199.99")``, ``USD`` -> ``19999``; refuses amounts that do not fit the currency exactly."""
    exponent = 0 if currency.upper() in _ZERO_DECIMAL_CURRENCIES else 2
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value() or minor < 0:
        raise ValueError(f"{amount} {currency} is not a whole number of minor units")
    return int(minor)


class GatewayError(Exception):
    pass


class TransientGatewayError(GatewayError):
    pass


class PermanentGatewayError(GatewayError):
    pass


class PaymentDeclined(GatewayError):
    def __init__(self, decline_code: str, *, reference: str = "") -> None:
        super().__init__(f"declined: {decline_code}")
        self.decline_code = decline_code
        self.reference = reference


@dataclass(frozen=True)
class GatewayResult:
    reference: str  # the provider's id of the charge / refund, stored on our side
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class GatewayRecord:
    """One operation as the provider knows it (for reconciliation)."""

    kind: str  # "charge" | "refund"
    idempotency_key: str
    reference: str
    status: str  # "succeeded" | "declined"
    amount_minor: int
    currency: str
    booking_id: str
    charge_reference: str = ""  # refunds: the charge refunded


class PaymentGateway(Protocol):
    name: str

    def charge(
        self, *, amount_minor: int, currency: str, idempotency_key: str, payment_token: str, booking_id: int
    ) -> GatewayResult: ...

    def refund(
        self, *, charge_reference: str, amount_minor: int, currency: str, idempotency_key: str, booking_id: int
    ) -> GatewayResult: ...

    def records(self) -> list[GatewayRecord]: ...


class HttpDummyGateway:
    """Client of ``payments.dummy_gateway`` (a real HTTP server: timeouts and outages are real)."""

    name = "dummy"

    def __init__(self, *, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def charge(
        self, *, amount_minor: int, currency: str, idempotency_key: str, payment_token: str, booking_id: int
    ) -> GatewayResult:
        body = {"amount_minor": amount_minor, "currency": currency, "token": payment_token, "booking_id": booking_id}
        return self._result(self._post("/v1/charges", body, idempotency_key))

    def refund(
        self, *, charge_reference: str, amount_minor: int, currency: str, idempotency_key: str, booking_id: int
    ) -> GatewayResult:
        body = {
            "charge": charge_reference,
            "amount_minor": amount_minor,
            "currency": currency,
            "booking_id": booking_id,
        }
        return self._result(self._post("/v1/refunds", body, idempotency_key))

    def records(self) -> list[GatewayRecord]:
        data = self._request(urllib.request.Request(f"{self.base_url}/v1/operations"))  # noqa: S310 - URL from settings
        return [GatewayRecord(**row) for row in data["operations"]]

    @staticmethod
    def _result(data: dict[str, Any]) -> GatewayResult:
        if data.get("status") == "declined":
            raise PaymentDeclined(str(data.get("decline_code") or "declined"), reference=str(data.get("id", "")))
        return GatewayResult(
            reference=str(data["id"]), amount_minor=int(data["amount_minor"]), currency=str(data["currency"])
        )

    def _post(self, path: str, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - URL from settings
            f"{self.base_url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
        )
        return self._request(request)

    def _request(self, request: urllib.request.Request) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) URL from settings
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            payload = _json_or_empty(exc.read())
            if exc.code == 402:
                return payload  # a decline is an answer, not an error
            if exc.code == 429 or exc.code >= 500:
                raise TransientGatewayError(f"gateway HTTP {exc.code}") from exc
            raise PermanentGatewayError(f"gateway HTTP {exc.code}: {payload.get('error', '')}") from exc
        except (TimeoutError, ConnectionError, urllib.error.URLError, OSError) as exc:
            raise TransientGatewayError(f"gateway unreachable: {type(exc).__name__}: {exc}") from exc


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def gateway_get() -> PaymentGateway:
    """The configured gateway (read at call time, never at import)."""
    if settings.PAYMENTS_GATEWAY == "dummy":
        return HttpDummyGateway(
            base_url=settings.PAYMENTS_GATEWAY_URL, timeout=settings.PAYMENTS_GATEWAY_TIMEOUT_SECONDS
        )
    raise LookupError(f"unknown PAYMENTS_GATEWAY {settings.PAYMENTS_GATEWAY!r}")
