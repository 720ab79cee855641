"""Operating the outbox: backlog figures, purge, requeue (service, command, admin), the post-commit NOTIFY kick."""

from __future__ import annotations

import json
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

from messaging.models import DeadLetter, OutboxDelivery, OutboxEvent, ProcessedMessage
from messaging.queries import (
    OUTBOX_EVENT_INSERT_CTES,
    OUTBOX_EVENT_INSERT_RESULT,
    outbox_event_insert_params,
    outbox_event_inserted,
)
from messaging.selectors import outbox_backlog_stats
from messaging.services import outbox_event_build, outbox_purge_delivered, outbox_relay_kick
from messaging.tests.conftest import KAFKA, RABBITMQ, fake_booking_ids, record_booking_events
from tourapp.db import mark_in_database, model_insert_params, model_insert_sql, prepared_cursor

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
    """What a domain app's ``queries.py`` does: its row and the event in one statement, composed
    from messaging's public fragment."""
    values = model_insert_params(group, param_prefix="group_")
    event = outbox_event_build(
        aggregate_type="group",
        aggregate_id=str(group.pk),
        event_type="group.created",
        routing_key="group.created",
        payload={"name": group.name},
    )
    group_insert = model_insert_sql(Group, param_prefix="group_")
    sql = f"WITH grp AS ({group_insert}),{OUTBOX_EVENT_INSERT_CTES}\n{OUTBOX_EVENT_INSERT_RESULT}"
    with prepared_cursor() as cursor:
        cursor.execute(sql, {**values, **outbox_event_insert_params(event)})
        outbox_event_inserted(event, cursor.fetchone())
    mark_in_database(group)
    return event


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

    # then a progress line came first (one every few seconds on a long purge), then the summary
    assert out.getvalue().splitlines()[0].startswith("purged: 1 (")
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


def test_requeue_dry_run_lists_the_dead_deliveries_it_would_requeue_and_changes_nothing():
    # given two events dead on both destinations
    events = record_booking_events(fake_booking_ids(2))
    OutboxDelivery.objects.update(state="dead", attempts=25)
    out = StringIO()

    # when a dry run of the Kafka requeue
    call_command("outbox_requeue", "--destination", "kafka", "--dry-run", stdout=out)

    # then it names the count per destination and event type and the ids, and nothing changed
    text = out.getvalue()
    kafka_ids = sorted(OutboxDelivery.objects.filter(destination=KAFKA).values_list("id", flat=True))
    assert "kafka      tour.booked          2" in text
    assert f"ids: {kafka_ids[0]} {kafka_ids[1]}" in text
    assert "dry run: 2 dead deliveries would be requeued; nothing changed" in text
    assert OutboxDelivery.objects.filter(state="dead").count() == 2 * len(events)


def test_requeue_command_prints_a_progress_line_as_it_goes():
    # given three dead deliveries
    record_booking_events(fake_booking_ids(3))
    OutboxDelivery.objects.filter(destination=RABBITMQ).update(state="dead")
    out = StringIO()

    # when
    call_command("outbox_requeue", "--destination", "rabbitmq", stdout=out)

    # then the first chunk printed a progress line before the summary
    assert out.getvalue().splitlines()[0].startswith("requeued: 3 (")
    assert "3 dead deliveries requeued" in out.getvalue()


def test_outbox_status_shows_pending_oldest_age_and_dead_per_destination():
    # given one event ten minutes old, dead on RabbitMQ, pending on Kafka
    (event,) = record_booking_events(fake_booking_ids(1))
    _age([event], days=10 / (24 * 60))
    OutboxDelivery.objects.filter(destination=RABBITMQ).update(state="dead")
    out = StringIO()

    # when
    call_command("outbox_status", stdout=out, no_color=True)

    # then one line per destination
    lines = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[1:] if line.split()}
    assert lines["kafka"][1] == "1" and lines["kafka"][-1] == "0"
    assert 590 <= float(lines["kafka"][2]) <= 700
    assert lines["rabbitmq"][1:] == ["0", "-", "1"]
    assert "outbox_requeue --dry-run" in out.getvalue()


def test_outbox_status_json_is_the_backlog_stats():
    # given one pending event
    record_booking_events(fake_booking_ids(1))
    out = StringIO()

    # when
    call_command("outbox_status", "--json", stdout=out)

    # then
    stats = json.loads(out.getvalue())
    assert set(stats) == set(settings.OUTBOX_DESTINATIONS)
    assert stats[KAFKA]["pending"] == 1 and stats[KAFKA]["dead"] == 0
    assert stats[KAFKA]["oldest_pending_age_seconds"] >= 0


@pytest.mark.parametrize("model", ["outboxevent", "outboxdelivery", "deadletter", "processedmessage"])
def test_admin_outbox_and_consumer_tables_cannot_be_deleted_from(admin_client, model):
    # given one row of each
    (event,) = record_booking_events(fake_booking_ids(1))
    DeadLetter.objects.create(transport="kafka", source="t", reason="r")
    ProcessedMessage.objects.create(handler="h", dedup_key="k", transport="kafka")
    obj_id = {
        "outboxevent": event.pk,
        "outboxdelivery": event.deliveries.first().pk,
        "deadletter": DeadLetter.objects.get().pk,
        "processedmessage": ProcessedMessage.objects.get().pk,
    }[model]

    # when the superuser opens the list, the detail page and the delete page
    listing = admin_client.get(reverse(f"admin:messaging_{model}_changelist"))
    detail = admin_client.get(reverse(f"admin:messaging_{model}_change", args=[obj_id]))
    delete = admin_client.get(reverse(f"admin:messaging_{model}_delete", args=[obj_id]))

    # then no "Delete selected", no delete link, no Save button, and the delete page is refused
    assert listing.status_code == 200 and detail.status_code == 200
    assert "delete_selected" not in listing.content.decode()
    assert 'class="deletelink"' not in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()
    assert delete.status_code == 403


def test_admin_titles_use_correct_plurals_and_view_site_goes_to_the_api(admin_client):
    # when
    index = admin_client.get(reverse("admin:index")).content.decode()
    listing = admin_client.get(reverse("admin:messaging_outboxdelivery_changelist")).content.decode()

    # then
    assert "Outbox deliveries" in index and "deliverys" not in index.lower()
    assert "Select outbox delivery to view" in listing
    assert 'href="/api/"' in index


def test_admin_event_page_pretty_prints_the_payload_and_requeues_its_dead_deliveries(admin_client):
    # given an event dead on RabbitMQ
    (event,) = record_booking_events(fake_booking_ids(1))
    OutboxDelivery.objects.filter(event=event, destination=RABBITMQ).update(state="dead", attempts=25)
    url = reverse("admin:messaging_outboxevent_change", args=[event.pk])

    # when its page is shown
    html = admin_client.get(url).content.decode()

    # then the payload is indented JSON and a requeue button posts to the event's operate URL
    assert "&quot;seats&quot;: 2" in html and "\n  &quot;totalPrice&quot;" in html
    operate = reverse("admin:messaging_outboxevent_operate", args=[event.pk])
    assert f'action="{operate}"' in html and "Requeue dead deliveries" in html

    # when the button is pressed
    response = admin_client.post(operate)

    # then the delivery is pending again and the page is shown again
    assert response.status_code == 302 and response["Location"] == url
    assert OutboxDelivery.objects.get(event=event, destination=RABBITMQ).state == "pending"
    assert "Requeue dead deliveries" not in admin_client.get(url).content.decode()


def test_admin_dead_delivery_page_has_a_requeue_button_a_pending_one_has_none(admin_client):
    # given one dead and one pending delivery
    (event,) = record_booking_events(fake_booking_ids(1))
    dead = OutboxDelivery.objects.get(event=event, destination=RABBITMQ)
    pending = OutboxDelivery.objects.get(event=event, destination=KAFKA)
    OutboxDelivery.objects.filter(pk=dead.pk).update(state="dead")

    # when
    dead_page = admin_client.get(reverse("admin:messaging_outboxdelivery_change", args=[dead.pk])).content.decode()
    pending_page = admin_client.get(reverse("admin:messaging_outboxdelivery_change", args=[pending.pk])).content
    response = admin_client.post(reverse("admin:messaging_outboxdelivery_operate", args=[dead.pk]))

    # then
    assert "Requeue this dead delivery" in dead_page
    assert b"Requeue this dead delivery" not in pending_page
    assert response.status_code == 302
    assert OutboxDelivery.objects.get(pk=dead.pk).state == "pending"


def test_admin_requeue_needs_the_change_permission_even_for_staff_who_may_view(client):
    # given a staff user who may only view deliveries, and a dead delivery
    from django.contrib.auth.models import Permission, User

    (event,) = record_booking_events(fake_booking_ids(1))
    dead = OutboxDelivery.objects.get(event=event, destination=RABBITMQ)
    OutboxDelivery.objects.filter(pk=dead.pk).update(state="dead")
    viewer = User.objects.create_user("outbox-viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outboxdelivery"))
    client.force_login(viewer)

    # when they open the page and post to the requeue URL anyway
    page = client.get(reverse("admin:messaging_outboxdelivery_change", args=[dead.pk]))
    response = client.post(reverse("admin:messaging_outboxdelivery_operate", args=[dead.pk]))

    # then no button, a 403, and the delivery stays dead
    assert page.status_code == 200 and b"Requeue this dead delivery" not in page.content
    assert response.status_code == 403
    assert OutboxDelivery.objects.get(pk=dead.pk).state == "dead"


@pytest.mark.parametrize("object_id", ["999999999", "not-a-number"])
def test_admin_operate_url_of_an_unknown_or_malformed_id_is_a_404(admin_client, object_id):
    response = admin_client.post(f"/admin/messaging/outboxdelivery/{object_id}/operate/")
    assert response.status_code == 404


def test_admin_operate_url_refuses_a_get(admin_client):
    (event,) = record_booking_events(fake_booking_ids(1))
    response = admin_client.get(reverse("admin:messaging_outboxevent_operate", args=[event.pk]))
    assert response.status_code == 405
