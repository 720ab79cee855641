"""Operating the outbox: backlog figures, purge, requeue (service, command, admin), the post-commit NOTIFY kick."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from messaging.models import OutboxDelivery, OutboxEvent
from messaging.selectors import outbox_backlog_stats
from messaging.services import outbox_event_record, outbox_purge_delivered, outbox_relay_kick
from messaging.tests.conftest import KAFKA, RABBITMQ, fake_booking_ids, record_booking_events
from tourapp.db import model_insert_statement

pytestmark = pytest.mark.django_db


def _age(events: list[OutboxEvent], *, days: float) -> None:
    OutboxEvent.objects.filter(id__in=[e.id for e in events]).update(created_at=timezone.now() - timedelta(days=days))
    OutboxDelivery.objects.filter(event__in=events).update(created_at=timezone.now() - timedelta(days=days))


def _new_group(name: str) -> Group:
    """A business row stand-in (a unique name), its id reserved from its sequence as the bookings service does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [Group._meta.db_table])
        (group_id,) = cursor.fetchone()
    return Group(id=group_id, name=name)


def _record_along_with(group: Group) -> OutboxEvent:
    return outbox_event_record(
        aggregate_type="group",
        aggregate_id=str(group.pk),
        event_type="group.created",
        routing_key="group.created",
        payload={"name": group.name},
        along_with=model_insert_statement(group),
    )


def test_an_event_recorded_along_with_its_business_row_writes_both_in_one_statement():
    # when an event is recorded along with the new row it is about
    group = _new_group("travellers")
    with transaction.atomic():
        event = _record_along_with(group)

    # then the row and the event, with its deliveries, are written, and the instance is saved
    assert Group.objects.get(pk=group.pk).name == "travellers"
    assert not group._state.adding
    saved = OutboxEvent.objects.get(pk=event.pk)
    assert (saved.aggregate_id, saved.payload["name"]) == (str(group.pk), "travellers")
    assert sorted(saved.deliveries.values_list("destination", "state")) == sorted(
        (destination, "pending") for destination in settings.OUTBOX_DESTINATIONS
    )


def test_a_business_row_the_database_refuses_writes_no_event():
    # given a name already taken (unique)
    Group.objects.create(name="taken")

    # when an event is recorded along with a row that violates that constraint
    with pytest.raises(IntegrityError), transaction.atomic():
        _record_along_with(_new_group("taken"))

    # then neither the row nor the event exists
    assert Group.objects.filter(name="taken").count() == 1
    assert not OutboxEvent.objects.filter(event_type="group.created").exists()


def test_an_event_needs_its_business_row_id_before_it_is_recorded():
    with pytest.raises(ValueError, match="primary key"), transaction.atomic():
        _record_along_with(Group(name="no id yet"))
    assert not OutboxEvent.objects.filter(event_type="group.created").exists()


def test_backlog_stats_count_pending_and_dead_per_destination_with_the_oldest_pending_age():
    # given two events, ten minutes old; one RabbitMQ delivery dead, one Kafka delivery delivered
    events = record_booking_events(fake_booking_ids(2))
    _age(events, days=10 / (24 * 60))
    OutboxDelivery.objects.filter(event=events[0], destination=RABBITMQ).update(state="dead")
    OutboxDelivery.objects.filter(event=events[0], destination=KAFKA).update(state="delivered")

    # when
    stats = outbox_backlog_stats()

    # then
    assert stats[RABBITMQ]["pending"] == 1 and stats[RABBITMQ]["dead"] == 1
    assert stats[KAFKA]["pending"] == 1 and stats[KAFKA]["dead"] == 0
    assert 590 <= stats[RABBITMQ]["oldest_pending_age_seconds"] <= 700


def test_backlog_stats_list_every_destination_even_when_idle():
    assert outbox_backlog_stats() == {
        destination: {"pending": 0, "dead": 0, "oldest_pending_age_seconds": None}
        for destination in settings.OUTBOX_DESTINATIONS
    }


def test_purge_deletes_only_fully_delivered_events_past_retention_in_batches():
    # given 5 old fully delivered events, 1 old event still pending on Kafka, 1 old dead, 1 recent delivered
    old_delivered = record_booking_events(fake_booking_ids(5))
    old_pending, old_dead, recent = record_booking_events(fake_booking_ids(3))
    _age([*old_delivered, old_pending, old_dead], days=settings.OUTBOX_RETENTION_DAYS + 1)
    OutboxDelivery.objects.update(state="delivered")
    OutboxDelivery.objects.filter(event=old_pending, destination=KAFKA).update(state="pending")
    OutboxDelivery.objects.filter(event=old_dead, destination=RABBITMQ).update(state="dead")

    # when purging two events per statement
    purged = outbox_purge_delivered(batch_size=2)

    # then only the old delivered events (and their deliveries) are gone
    assert purged == 5
    assert set(OutboxEvent.objects.values_list("id", flat=True)) == {old_pending.id, old_dead.id, recent.id}
    assert OutboxDelivery.objects.count() == 6


def test_purge_command_reports_progress_and_honours_the_retention_argument():
    # given one delivered event two days old
    events = record_booking_events(fake_booking_ids(1))
    _age(events, days=2)
    OutboxDelivery.objects.update(state="delivered")
    out = StringIO()

    # when
    call_command("outbox_purge", "--older-than-days", "1", stdout=out)

    # then
    assert "1 delivered events older than 1 days purged" in out.getvalue()
    assert not OutboxEvent.objects.exists()


def test_requeue_command_requeues_dead_deliveries_by_destination_and_time_range():
    # given dead deliveries on both destinations, one event old, one recent
    old, recent = record_booking_events(fake_booking_ids(2))
    _age([old], days=3)
    OutboxDelivery.objects.update(state="dead", attempts=25, last_error="boom")
    out = StringIO()

    # when requeueing Kafka deliveries of events created in the last day
    since = (timezone.now() - timedelta(days=1)).isoformat()
    call_command("outbox_requeue", "--destination", "kafka", "--since", since, stdout=out)

    # then exactly that one is pending again, attempts reset, due now
    requeued = OutboxDelivery.objects.get(state="pending")
    assert (requeued.event_id, requeued.destination, requeued.attempts) == (recent.id, KAFKA, 0)
    assert requeued.next_attempt_at is None
    assert OutboxDelivery.objects.filter(state="dead").count() == 3
    assert "1 dead deliveries requeued" in out.getvalue()


def test_requeue_command_refuses_to_requeue_everything_without_all():
    with pytest.raises(CommandError, match="--all"):
        call_command("outbox_requeue", stdout=StringIO())


def test_admin_lists_events_with_delivery_states_and_backlog_and_requeues_dead_ones(admin_client):
    # given one event dead on RabbitMQ
    (event,) = record_booking_events(fake_booking_ids(1))
    OutboxDelivery.objects.filter(event=event, destination=RABBITMQ).update(state="dead", attempts=25)
    changelist = reverse("admin:messaging_outboxevent_changelist")

    # when the changelist is shown, filtered on dead deliveries and searched by event id
    page = admin_client.get(changelist, {"deliveries__state": "dead", "q": str(event.event_id)})

    # then it shows the event, its per-destination states and the backlog table
    html = page.content.decode()
    assert page.status_code == 200
    assert "rabbitmq: dead (25)" in html and "kafka: pending" in html
    assert 'id="outbox-backlog"' in html

    # when the requeue action runs on it
    response = admin_client.post(changelist, {"action": "requeue_dead", "_selected_action": [event.pk]})

    # then the dead delivery is pending again
    assert response.status_code == 302
    assert OutboxDelivery.objects.get(event=event, destination=RABBITMQ).state == "pending"


def test_admin_delivery_list_searches_by_event_id(admin_client):
    (event, other) = record_booking_events(fake_booking_ids(2))
    page = admin_client.get(reverse("admin:messaging_outboxdelivery_changelist"), {"q": str(event.event_id)})
    html = page.content.decode()
    assert page.status_code == 200
    assert str(event.event_id) in html and str(other.event_id) not in html


@pytest.mark.django_db(transaction=True)
def test_committed_event_wakes_the_relay_loops_with_a_notify():
    # given a listener on the relay's channel (what each worker's relay loop does)
    import psycopg
    from django.db import connections

    with psycopg.connect(**connections["default"].get_connection_params(), autocommit=True) as listener:
        listener.execute(f"LISTEN {settings.OUTBOX_NOTIFY_CHANNEL}")

        # when an event commits
        record_booking_events(fake_booking_ids(1))

        # then the listener is woken (deadline, not a sleep)
        woken = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.channel for n in woken] == [settings.OUTBOX_NOTIFY_CHANNEL]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_event_wakes_no_relay_loop():
    import psycopg
    from django.db import connections, transaction

    with psycopg.connect(**connections["default"].get_connection_params(), autocommit=True) as listener:
        listener.execute(f"LISTEN {settings.OUTBOX_NOTIFY_CHANNEL}")

        # when an event is recorded in a transaction that then rolls back
        with pytest.raises(RuntimeError), transaction.atomic():
            record_booking_events(fake_booking_ids(1))
            raise RuntimeError("the booking failed after the event was written")

        # then no notification arrives (bounded wait) and nothing was written
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    assert not OutboxEvent.objects.exists()


def test_kick_never_raises_when_the_notify_fails(monkeypatch, caplog):
    # given a database connection that fails on the kick's statement
    from django.db import connection

    real_cursor = connection.cursor

    class FailingCursor:
        def __init__(self):
            self._cursor = real_cursor()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._cursor.close()

        def execute(self, sql, params=None):
            if "pg_notify" in sql:
                raise DatabaseError("server closed the connection unexpectedly")
            return self._cursor.execute(sql, params)

    # when a requeue's post-commit kick runs, then nothing raises into the caller and the failure is logged
    with monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", FailingCursor)
        outbox_relay_kick(event_ids=[1])
    assert "could not kick the relay" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_sweep_task_drains_its_destination_and_purge_task_keeps_recent_events(amqp_reader, monkeypatch):
    # given three committed events (the post-commit kick is not under test here)
    from messaging.tasks import outbox_purge_task, outbox_sweep_task

    monkeypatch.setattr("messaging.services.outbox_relay_kick", lambda **_kwargs: None)
    reader = amqp_reader()
    events = record_booking_events(fake_booking_ids(3))

    # when the beat's sweep runs for RabbitMQ, then the purge
    outbox_sweep_task(destination=RABBITMQ)
    outbox_purge_task()

    # then RabbitMQ got all three, Kafka's rows wait for their own sweep, and nothing recent was purged
    assert len(reader.read(count=3)) == 3
    assert set(OutboxDelivery.objects.filter(destination=RABBITMQ).values_list("state", flat=True)) == {"delivered"}
    assert set(OutboxDelivery.objects.filter(destination=KAFKA).values_list("state", flat=True)) == {"pending"}
    assert OutboxEvent.objects.count() == len(events)
