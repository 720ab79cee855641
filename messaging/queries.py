"""Messaging's hand-written SQL: every statement the outbox and the relay run on their hot paths.

Each statement is built once per process from the models' metadata (so it follows schema
changes as the ORM does) and replaces an ORM call whose compilation cost more CPU than the
database work; values are always bound parameters.

The outbox insert is also public as a fragment (``OUTBOX_EVENT_INSERT_CTES``) so a domain app
can write its business row and the event about it in one statement, composed in the domain
app's own ``queries.py``: the dependency points down, messaging never sees domain SQL.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from messaging.models import OutboxDelivery, OutboxEvent, ProcessedMessage
from tourapp.db import mark_in_database, one_row, prepared_cursor

# ------------------------------------------------------------------ outbox writer

OUTBOX_EVENT_INSERT_CTES = f"""
outbox_event AS (
    INSERT INTO {OutboxEvent._meta.db_table}
        (event_id, aggregate_type, aggregate_id, event_type, routing_key, message_key,
         payload, headers, correlation_id, created_at)
    VALUES (%(outbox_event_id)s, %(outbox_aggregate_type)s, %(outbox_aggregate_id)s, %(outbox_event_type)s,
            %(outbox_routing_key)s, %(outbox_message_key)s, %(outbox_payload)s::jsonb, %(outbox_headers)s::jsonb,
            %(outbox_correlation_id)s, %(outbox_created_at)s)
    RETURNING id
), outbox_deliveries AS (
    INSERT INTO {OutboxDelivery._meta.db_table}
        (event_id, destination, state, aggregate_key, attempts, last_error, created_at)
    SELECT outbox_event.id, destination, %(outbox_pending)s, %(outbox_aggregate_key)s, 0, '', %(outbox_created_at)s
    FROM outbox_event, unnest(string_to_array(%(outbox_destinations)s, ',')) AS destination
)"""  # noqa: S608 - table names come from the models, values are bound parameters
"""Common table expressions that insert one outbox event (``outbox_event``, returning its ``id``)
and one pending delivery per destination (``outbox_deliveries``). Its parameters are named
``outbox_*`` (``outbox_event_insert_params``): a statement composing it names its own otherwise.
PostgreSQL runs every data-modifying CTE exactly once, whether or not the query reads it."""

OUTBOX_EVENT_INSERT_RESULT = "SELECT outbox_event.id, pg_notify(%(outbox_channel)s, '') FROM outbox_event"
"""The final ``SELECT`` of a statement built on ``OUTBOX_EVENT_INSERT_CTES``: the event's id, and the
``NOTIFY OUTBOX_NOTIFY_CHANNEL`` that PostgreSQL delivers when, and only if, the transaction
commits (the on-commit kick of the relay loops, without a round trip of its own)."""

OUTBOX_EVENT_INSERT_SQL = f"WITH {OUTBOX_EVENT_INSERT_CTES}\n{OUTBOX_EVENT_INSERT_RESULT}"


def outbox_event_insert_params(event: OutboxEvent) -> dict[str, Any]:
    """The bound parameters of ``OUTBOX_EVENT_INSERT_CTES`` and ``OUTBOX_EVENT_INSERT_RESULT`` for
    ``event`` (built by ``messaging.services.outbox_event_build``)."""
    return {
        "outbox_event_id": event.event_id,
        "outbox_aggregate_type": event.aggregate_type,
        "outbox_aggregate_id": event.aggregate_id,
        "outbox_event_type": event.event_type,
        "outbox_routing_key": event.routing_key,
        "outbox_message_key": event.message_key,
        "outbox_payload": json.dumps(event.payload, cls=DjangoJSONEncoder),
        "outbox_headers": json.dumps(event.headers),
        "outbox_correlation_id": event.correlation_id,
        "outbox_created_at": event.created_at,
        "outbox_aggregate_key": f"{event.aggregate_type}:{event.aggregate_id}",
        "outbox_destinations": ",".join(settings.OUTBOX_DESTINATIONS),  # as text: psycopg dumps lists in Python
        "outbox_pending": OutboxDelivery.State.PENDING.value,
        "outbox_channel": settings.OUTBOX_NOTIFY_CHANNEL,
    }


def outbox_event_inserted(event: OutboxEvent, row: tuple[Any, ...] | None) -> None:
    """Mark ``event`` written from the row ``OUTBOX_EVENT_INSERT_RESULT`` returned (as ``save()`` leaves it)."""
    (event.pk, _) = one_row(row)
    mark_in_database(event)


def outbox_event_insert(*, event: OutboxEvent) -> None:
    """Insert ``event``, its deliveries and the commit-time kick in one round trip (prepared)."""
    with prepared_cursor() as cursor:
        cursor.execute(OUTBOX_EVENT_INSERT_SQL, outbox_event_insert_params(event), prepare=True)
        outbox_event_inserted(event, cursor.fetchone())


OUTBOX_NOTIFY_SQL = "SELECT pg_notify(%s, '')"


def outbox_notify() -> None:
    """Wake the relay loops: ``NOTIFY OUTBOX_NOTIFY_CHANNEL`` (inside a transaction, delivered at commit)."""
    with connection.cursor() as cursor:
        cursor.execute(OUTBOX_NOTIFY_SQL, [settings.OUTBOX_NOTIFY_CHANNEL])


# ------------------------------------------------------------------ inbox

INBOX_INSERT_PROCESSED_SQL = f"""
INSERT INTO {ProcessedMessage._meta.db_table} (handler, dedup_key, event_id, transport, correlation_id, processed_at)
SELECT %(handler)s, k, e, %(transport)s, c, %(now)s
FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(k text, e uuid, c text)
ON CONFLICT (handler, dedup_key) DO NOTHING
RETURNING dedup_key
"""  # noqa: S608 - table name from model meta, values are parameters
"""Record ``rows`` (one JSON array of ``{k: dedup key, e: event id, c: correlation id}``) as processed
by ``handler``; returns the dedup keys that were new (the others existed already)."""


# ------------------------------------------------------------------ retention

OUTBOX_PURGE_DELIVERED_SQL = f"""
WITH doomed AS (
    SELECT e.id FROM {OutboxEvent._meta.db_table} e
    WHERE e.created_at < %(cutoff)s
      AND NOT EXISTS (
          SELECT 1 FROM {OutboxDelivery._meta.db_table} d
          WHERE d.event_id = e.id AND d.state <> '{OutboxDelivery.State.DELIVERED.value}')
    ORDER BY e.id
    LIMIT %(limit)s
    FOR UPDATE OF e SKIP LOCKED
), deliveries AS (
    DELETE FROM {OutboxDelivery._meta.db_table} d USING doomed WHERE d.event_id = doomed.id
)
DELETE FROM {OutboxEvent._meta.db_table} e USING doomed WHERE e.id = doomed.id
"""  # noqa: S608 - table names and the state constant come from the models, values are parameters
"""Delete up to ``limit`` events created before ``cutoff`` whose every delivery is delivered, with
their deliveries, skipping rows a relay has locked. Its row count is the number of events deleted."""


def outbox_purge_delivered_batch(*, cutoff: datetime, limit: int) -> int:
    """Run ``OUTBOX_PURGE_DELIVERED_SQL`` once; returns how many events it deleted."""
    with connection.cursor() as cursor:
        cursor.execute(OUTBOX_PURGE_DELIVERED_SQL, {"cutoff": cutoff, "limit": limit})
        return int(cursor.rowcount)


# ------------------------------------------------------------------ relay (messaging.relay)

_DELIVERY = OutboxDelivery._meta.db_table
_EVENT = OutboxEvent._meta.db_table
_PENDING = OutboxDelivery.State.PENDING.value
_DELIVERED = OutboxDelivery.State.DELIVERED.value
_DEAD = OutboxDelivery.State.DEAD.value

RELAY_LOCK_NAMESPACE = 0x7E1A
"""key1 of every relay liveness advisory lock; key2 is the relay's token. In pg_locks: classid / objid."""

LIVE_RELAY_TOKENS_SQL = f"""
SELECT l.objid::bigint FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.classid = {RELAY_LOCK_NAMESPACE} AND l.objsubid = 2 AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""  # noqa: S608 - a constant, no input
"""The tokens whose relay is alive: the liveness advisory locks held in this database."""

RELAY_TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s::int, %s::int)"
RELAY_PING_SQL = "SELECT 1"
# A vanished peer (lost container, cut network) ends the session after about idle + interval * count.
RELAY_KEEPALIVE_SQL = "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2"
# The pipelined drain's own connections: a forgotten claim or record is the relay's at-least-once anyway.
RELAY_RELAX_DURABILITY_SQL = "SET synchronous_commit = off"
RELAY_LISTEN_SQL = "LISTEN {}"
"""``LISTEN`` on a channel: ``psycopg.sql.SQL(RELAY_LISTEN_SQL).format(sql.Identifier(channel))``."""

RELAY_CLAIM_SQL = f"""
WITH claimed AS (
    SELECT d.id FROM {_DELIVERY} d
    WHERE d.destination = %(destination)s
      AND d.state = '{_PENDING}'
      AND d.id >= (SELECT min(m.id) FROM {_DELIVERY} m WHERE m.destination = %(destination)s AND m.state = '{_PENDING}')
      AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s
           -- leased by a relay that died (its liveness lock is gone): due now, not after the lease
           OR (d.claimed_by IS NOT NULL AND d.claimed_by NOT IN ({LIVE_RELAY_TOKENS_SQL})))
      AND NOT EXISTS (
          SELECT 1 FROM {_DELIVERY} p
          WHERE p.destination = d.destination AND p.aggregate_key = d.aggregate_key
            AND p.state = '{_PENDING}' AND p.id < d.id)
      AND NOT EXISTS (
          SELECT 1 FROM {_DELIVERY} x
          WHERE x.destination = d.destination AND x.aggregate_key = d.aggregate_key
            AND x.state = '{_DEAD}' AND x.id < d.id)
    ORDER BY d.destination, d.id
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
), leased AS (
    UPDATE {_DELIVERY} d SET next_attempt_at = %(lease)s, claimed_by = %(token)s
    WHERE d.id = ANY(ARRAY(SELECT id FROM claimed))
    RETURNING d.id, d.attempts, d.event_id
)
SELECT leased.id, leased.attempts, e.event_id::text, e.event_type, e.routing_key, e.message_key,
       -- headers as JSON text, decoded by the relay: cheaper for the database, which shares the
       -- machine with the relay, than unpacking them in SQL (docs/performance.md)
       e.payload::text, e.correlation_id, e.headers::text
FROM leased JOIN {_EVENT} e ON e.id = leased.event_id
WHERE e.id = ANY(ARRAY(SELECT event_id FROM leased))
"""  # noqa: S608 - table names and state constants come from the model, values are parameters
"""The one locking query of the relay: lease up to ``limit`` due *heads* of ``destination`` (no
earlier pending or dead row of the same aggregate there; each ``NOT EXISTS`` is served by its
partial index) and return them with their events. Candidates are read from the first pending id
on (found through the pending partial index, so delivered rows waiting for the purge are never
scanned whatever the plan), and the lease update and the event fetch go through primary keys, so
a claim costs O(batch), not O(table)."""

RELAY_RECORD_DELIVERED_SQL = f"""
UPDATE {_DELIVERY} SET state = '{_DELIVERED}', delivered_at = %(now)s, next_attempt_at = NULL,
                       attempts = attempts + 1, claimed_by = NULL
WHERE id = ANY(%(ids)s) AND state = '{_PENDING}' AND next_attempt_at = %(lease)s
"""  # noqa: S608 - see RELAY_CLAIM_SQL

RELAY_RECORD_FAILED_SQL = f"""
UPDATE {_DELIVERY} d SET attempts = v.attempts, state = v.state, next_attempt_at = v.next_at, last_error = v.error,
                         claimed_by = NULL
FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(states)s::text[], %(next_ats)s::timestamptz[],
            %(errors)s::text[]) AS v(id, attempts, state, next_at, error)
WHERE d.id = v.id AND d.state = '{_PENDING}' AND d.next_attempt_at = %(lease)s
"""  # noqa: S608 - see RELAY_CLAIM_SQL

RELAY_RECORD_DEFERRED_SQL = f"""
UPDATE {_DELIVERY} SET next_attempt_at = %(next_at)s, last_error = %(error)s, claimed_by = NULL
WHERE id = ANY(%(ids)s) AND state = '{_PENDING}' AND next_attempt_at = %(lease)s
"""  # noqa: S608 - see RELAY_CLAIM_SQL
"""The three outcome records; each is fenced on the lease, so a relay whose lease expired cannot
overwrite the outcome recorded by the relay that took its rows over."""
