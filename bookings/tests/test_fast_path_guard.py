"""Guard: the models the fast paths insert with hand-written SQL have nothing a bypassed ``save()``
would have run.

``bookings.queries.booking_insert_with_event`` (the booking and its outbox event),
``messaging.queries`` (outbox event and deliveries, inbox rows) and ``notifications.queries``
(notification records) write rows with one ``INSERT`` statement each: no ``Model.save()``, no
``pre_save``/``post_save`` signal. Logic put in either would be skipped silently on the hot path;
this test makes it loud instead.
"""

from __future__ import annotations

import pytest
from django.db import models
from django.db.models import signals

from bookings.models import Booking
from messaging.models import OutboxDelivery, OutboxEvent, ProcessedMessage
from notifications.models import Notification

INSERTED_BY_HAND: list[type[models.Model]] = [Booking, OutboxEvent, OutboxDelivery, ProcessedMessage, Notification]

WHY = (
    "{model} rows are inserted by hand-written SQL on the hot path (bookings/queries.py, messaging/queries.py, "
    "notifications/queries.py), which bypasses Model.save() and the pre_save/post_save signals: {found} would be "
    "skipped silently. Put that logic into the service that writes the row (e.g. bookings.services), not into "
    "the model."
)


def _bypassed_hooks(model: type[models.Model]) -> list[str]:
    """What a hand-written INSERT of ``model`` would skip: a ``save()`` override, save signal receivers."""
    found = [
        f"{klass.__name__}.save()" for klass in model.__mro__ if klass is not models.Model and "save" in vars(klass)
    ]
    found += [f"a {signal_name} receiver" for signal_name in ("pre_save", "post_save") if _listened(signal_name, model)]
    return found


def _listened(signal_name: str, model: type[models.Model]) -> bool:
    return getattr(signals, signal_name).has_listeners(model)


@pytest.mark.parametrize("model", INSERTED_BY_HAND, ids=lambda model: model.__name__)
def test_a_model_inserted_by_hand_has_no_save_override_nor_save_signal_receivers(model: type[models.Model]) -> None:
    found = _bypassed_hooks(model)
    assert not found, WHY.format(model=model.__name__, found=", ".join(found))


def test_the_guard_sees_a_save_override_and_save_signal_receivers() -> None:
    # given: a model with a save() override, and a receiver on another model
    class Overriding(models.Model):
        class Meta:
            abstract = True  # never registered: nothing outlives the test
            app_label = "bookings"

        def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().save(*args, **kwargs)

    def receiver(**kwargs):  # type: ignore[no-untyped-def]
        pass

    # when / then
    assert _bypassed_hooks(Overriding) == ["Overriding.save()"]
    signals.post_save.connect(receiver, sender=Booking, weak=False)
    try:
        assert _bypassed_hooks(Booking) == ["a post_save receiver"]
    finally:
        signals.post_save.disconnect(receiver, sender=Booking)
    assert _bypassed_hooks(Booking) == []
