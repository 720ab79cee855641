"""The e2e figures can fail: duplicate sends are counted from what the backends recorded as sent.

Pure logic and a temporary file; no processes are started.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.core.mail import EmailMessage

from notifications.sms import sms_backend
from tests.e2e.figures import send_duplicates
from tests.support.sends import RECORD_ENV, SendRecord, sends_read
from tourapp.correlation import correlation_scope


def _email(booking_id: str, event_id: str) -> SendRecord:
    return SendRecord(channel="email", booking_id=booking_id, event_id=event_id, digest="d-booked")


def test_two_sends_of_the_same_email_count_as_one_duplicate() -> None:
    # given a record where the email of one booking's event went out twice
    event_id = str(uuid.uuid4())
    records = [_email("7", event_id), _email("7", event_id)]

    # when
    duplicates = send_duplicates(records)

    # then
    assert duplicates == 1


def test_one_send_per_booking_channel_and_event_counts_no_duplicate() -> None:
    # given the email and the SMS of one event, and the email of another event of the same booking
    booked, cancelled = str(uuid.uuid4()), str(uuid.uuid4())
    records = [
        _email("7", booked),
        SendRecord(channel="sms", booking_id="7", event_id=booked, digest="d-booked"),
        _email("7", cancelled),
        _email("8", booked),
    ]

    # when / then
    assert send_duplicates(records) == 0


def test_events_without_an_event_id_are_told_apart_by_their_text() -> None:
    # given a foreign producer's booked and cancelled emails (no event id), and the booked one again
    records = [
        SendRecord(channel="email", booking_id="7", event_id=None, digest="d-booked"),
        SendRecord(channel="email", booking_id="7", event_id=None, digest="d-cancelled"),
        SendRecord(channel="email", booking_id="7", event_id=None, digest="d-booked"),
    ]

    # when / then
    assert send_duplicates(records) == 1


def test_the_recording_backends_append_one_record_per_send_with_the_booking_and_event(
    tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the recording backends, writing to a file of this test's own
    record = tmp_path / "sends.jsonl"
    monkeypatch.setenv(RECORD_ENV, str(record))
    settings.EMAIL_BACKEND = "tests.support.sends.RecordingEmailBackend"
    settings.SMS_BACKEND = "tests.support.sends.RecordingSmsBackend"
    event_id = str(uuid.uuid4())

    # when one email is sent twice and one SMS once, inside the scope a notification send opens
    with correlation_scope("cid-1", event_id=event_id, booking_id="42"):
        for _ in range(2):
            EmailMessage("Booking confirmed", "body", "from@example.com", ["to@example.com"]).send()
        sms_backend().send(to="+33612345678", text="Booking confirmed")

    # then the record holds three sends, of booking 42's event, and no recipient
    records = sends_read(record)
    assert [(r.channel, r.booking_id, r.event_id, r.correlation_id) for r in records] == [
        ("email", "42", event_id, "cid-1"),
        ("email", "42", event_id, "cid-1"),
        ("sms", "42", event_id, "cid-1"),
    ]
    assert "to@example.com" not in record.read_text() and "33612345678" not in record.read_text()
    # and the figure sees the email's second send
    assert send_duplicates(records) == 1


def test_a_record_cut_short_by_a_crash_is_not_a_send(tmp_path: Path) -> None:
    # given a record whose last line was cut mid-write
    record = tmp_path / "sends.jsonl"
    record.write_text('{"channel": "email", "booking_id": "1", "event_id": "e", "digest": "d"}\n{"channel": "em')

    # when / then
    assert [r.booking_id for r in sends_read(record)] == ["1"]
