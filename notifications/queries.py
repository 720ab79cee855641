"""Notifications' hand-written SQL: the batch insert a consumer runs per batch of events, and the
send claim and the record of a sent message, run once per message.

Built from the models' metadata (so they follow schema changes as the ORM does); values are
always bound parameters. Run on ``tourapp.db.prepared_cursor``.
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from notifications.models import Notification
from tourapp.db import select_columns

NOTIFICATIONS_INSERT_SQL = f"""
INSERT INTO {Notification._meta.db_table}
    (dedup_key, event_id, event_type, booking_id, correlation_id, channel, recipient, recipient_masked,
     language, context, status, attempts, last_error, summary, created_at, updated_at)
SELECT dedup_key, event_id, event_type, booking_id, correlation_id, channel, recipient, recipient_masked,
       language, context, %(status)s, 0, '', '', %(now)s, %(now)s
FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(
    dedup_key text, event_id uuid, event_type text, booking_id text, correlation_id text, channel text,
    recipient text, recipient_masked text, language text, context jsonb)
ON CONFLICT (dedup_key, channel) DO NOTHING
RETURNING id, dedup_key, channel
"""  # noqa: S608 - table name from model meta, values are parameters
"""Insert the notifications in ``rows`` (one JSON array of objects) that do not exist yet for their
``(dedup_key, channel)``, with ``status`` and ``now`` as created/updated time; returns the created ones."""


@cache
def notification_claim_statement() -> tuple[str, list[str]]:
    """The send claim (``pending`` -> ``sending``, or a ``sending`` row whose lease ``expired``), one
    conditional ``UPDATE .. RETURNING`` of the claimed row's every column; and their attnames in the
    same order, for ``tourapp.db.instance_from_row``."""
    columns, attnames = select_columns(Notification, "n")
    table = connection.ops.quote_name(Notification._meta.db_table)
    sql = f"""
    UPDATE {table} AS n
    SET status = %(sending)s, claimed_at = %(now)s, attempts = n.attempts + 1, updated_at = %(now)s
    WHERE n.id = %(id)s AND (n.status = %(pending)s OR (n.status = %(sending)s AND n.claimed_at < %(expired)s))
    RETURNING {columns}
    """  # noqa: S608 - names from model meta, values are parameters
    return sql, attnames


@cache
def notification_sent_statement() -> str:
    """Record a sent message whoever holds its claim now (it went out: never send it again)."""
    table = connection.ops.quote_name(Notification._meta.db_table)
    return f"""
    UPDATE {table}
    SET status = %(sent)s, sent_at = %(now)s, last_error = '', summary = %(summary)s, claimed_at = NULL,
        updated_at = %(now)s
    WHERE id = %(id)s AND status <> %(sent)s
    """  # noqa: S608 - names from model meta, values are parameters
