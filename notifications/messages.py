"""The words of every notification, in the user's language (Django i18n; French in ``locale/fr``).

The lesson's sentence is the delivery summary: "Email envoyé à user@example.com pour le tour
'Paris City Tour' d'un montant de 199.99 USD" (French) / "Email sent to ... for the tour ... for
an amount of ..." (English). It is logged and stored with the recipient masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import translation
from django.utils.translation import gettext as _

from bookings.event_schema import PAYMENT_CAPTURED, PAYMENT_FAILED, PAYMENT_REFUNDED, TOUR_BOOKED


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str


def _params(context: dict[str, Any]) -> dict[str, Any]:
    return {
        "tour": context.get("tour_name", ""),
        "amount": context.get("total_price", ""),
        "currency": context.get("currency", ""),
        "seats": context.get("seats") or 1,
    }


def _render_payment_email(event_type: str, params: dict[str, Any]) -> RenderedMessage:
    """The payments app's outcomes: paid, payment failed (booking cancelled), refunded."""
    if event_type == PAYMENT_CAPTURED:
        subject = _("Payment received: %(tour)s") % params
        body = _(
            "Hello,\n\nWe received your payment of %(amount)s %(currency)s for the tour '%(tour)s' "
            "(%(seats)s seat(s)). Your booking is paid.\n\nSee you soon!"
        )
    elif event_type == PAYMENT_FAILED:
        subject = _("Payment failed: %(tour)s") % params
        body = _(
            "Hello,\n\nYour payment of %(amount)s %(currency)s for the tour '%(tour)s' was declined, "
            "so your booking has been cancelled and its seats released. Nothing was charged.\n\n"
            "You are welcome to book again with another payment method."
        )
    else:
        subject = _("Refund issued: %(tour)s") % params
        body = _(
            "Hello,\n\nYour booking for the tour '%(tour)s' is cancelled and %(amount)s %(currency)s "
            "has been refunded to your payment method.\n\nWe hope to see you soon."
        )
    return RenderedMessage(subject=subject, body=body % params)


_PAYMENT_EVENT_TYPES = (PAYMENT_CAPTURED, PAYMENT_FAILED, PAYMENT_REFUNDED)


def render_email(*, event_type: str, context: dict[str, Any], language: str) -> RenderedMessage:
    params = _params(context)
    with translation.override(language):
        if event_type in _PAYMENT_EVENT_TYPES:
            return _render_payment_email(event_type, params)
        if event_type == TOUR_BOOKED:
            subject = _("Booking confirmed: %(tour)s") % params
            body = (
                _(
                    "Hello,\n\nYour booking for the tour '%(tour)s' is confirmed (%(seats)s seat(s)).\n"
                    "Amount: %(amount)s %(currency)s.\n\nSee you soon!"
                )
                % params
            )
        else:
            subject = _("Booking cancelled: %(tour)s") % params
            body = (
                _(
                    "Hello,\n\nYour booking for the tour '%(tour)s' has been cancelled.\n"
                    "Amount: %(amount)s %(currency)s.\n\nWe hope to see you soon."
                )
                % params
            )
    return RenderedMessage(subject=subject, body=body)


def render_sms(*, event_type: str, context: dict[str, Any], language: str) -> str:
    params = _params(context)
    with translation.override(language):
        if event_type == PAYMENT_CAPTURED:
            return _("Payment received: '%(tour)s', %(amount)s %(currency)s.") % params
        if event_type == PAYMENT_FAILED:
            return _("Payment declined: your booking for '%(tour)s' is cancelled, nothing was charged.") % params
        if event_type == PAYMENT_REFUNDED:
            return _("Refund issued: '%(tour)s', %(amount)s %(currency)s.") % params
        if event_type == TOUR_BOOKED:
            return _("Booking confirmed: '%(tour)s', %(amount)s %(currency)s.") % params
        return _("Booking cancelled: '%(tour)s', %(amount)s %(currency)s.") % params


def render_summary(
    *, event_type: str, channel: str, recipient_masked: str, context: dict[str, Any], language: str
) -> str:
    """The lesson's sentence, recipient masked: what the log and the admin show."""
    params = {**_params(context), "recipient": recipient_masked}
    with translation.override(language):
        if event_type in _PAYMENT_EVENT_TYPES:
            text = _("%(kind)s %(channel)s sent to %(recipient)s for the tour '%(tour)s' ('%(amount)s %(currency)s')")
            params |= {"kind": event_type, "channel": channel}
        elif channel == "sms" and event_type == TOUR_BOOKED:
            text = _("SMS sent to %(recipient)s for the tour '%(tour)s' for an amount of %(amount)s %(currency)s")
        elif channel == "sms":
            text = _(
                "Cancellation SMS sent to %(recipient)s for the tour '%(tour)s' "
                "for an amount of %(amount)s %(currency)s"
            )
        elif event_type == TOUR_BOOKED:
            text = _("Email sent to %(recipient)s for the tour '%(tour)s' for an amount of %(amount)s %(currency)s")
        else:
            text = _(
                "Cancellation email sent to %(recipient)s for the tour '%(tour)s' "
                "for an amount of %(amount)s %(currency)s"
            )
    return text % params
