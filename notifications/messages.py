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

from messaging.events import TOUR_BOOKED


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


def render_email(*, event_type: str, context: dict[str, Any], language: str) -> RenderedMessage:
    params = _params(context)
    with translation.override(language):
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
        if event_type == TOUR_BOOKED:
            return _("Booking confirmed: '%(tour)s', %(amount)s %(currency)s.") % params
        return _("Booking cancelled: '%(tour)s', %(amount)s %(currency)s.") % params


def render_summary(
    *, event_type: str, channel: str, recipient_masked: str, context: dict[str, Any], language: str
) -> str:
    """The lesson's sentence, recipient masked: what the log and the admin show."""
    params = {**_params(context), "recipient": recipient_masked}
    with translation.override(language):
        if channel == "sms" and event_type == TOUR_BOOKED:
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
