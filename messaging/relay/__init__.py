"""Outbox relay: moves pending deliveries to their broker. Claim, release, publish, record.

One batch for one destination is three steps, and no database lock is held across the network:

1. **Claim** (one statement, its own short transaction): ``SELECT ... FOR UPDATE SKIP LOCKED``
   the due *heads* (see order below), ordered by id, and push their ``next_attempt_at`` forward
   by a lease (``OUTBOX_CLAIM_LEASE_SECONDS``), naming the claiming process (``claimed_by``, see
   ``liveness``). Other relays skip locked rows during the claim and see leased rows as not due
   afterwards, so parallel relays never publish a row twice; a row whose claiming process died
   (its liveness lock is gone) is due again at once.
2. **Publish** outside any transaction (``messaging.publishers``): RabbitMQ with pipelined
   publisher confirms and ``mandatory``; Kafka with ``acks=all`` and the idempotent producer.
3. **Record** (second short transaction, bulk updates): delivered rows become ``delivered``;
   refused rows get ``attempts + 1``, ``last_error`` and an exponential backoff with jitter, and
   become ``dead`` after ``OUTBOX_MAX_ATTEMPTS``; when the broker was unreachable the undecided
   rows are only deferred (no attempt counted) and the destination is paused, doubling up to
   ``OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS``. Every update is fenced on the lease value, so a
   relay whose lease expired cannot overwrite the outcome of the relay that took over.

**Release**: claimed batches that were never sent (the broker went away mid-drain) are recorded
as deferred, not failed: their rows are due again after the pause, with no attempt counted.

Guaranteed:

- **At-least-once** per destination. A relay that dies between publish and record (crash,
  SIGKILL, lost connection before the confirm) leaves its rows pending; another relay publishes
  them again at its next claim (a live relay drains on every commit and every
  ``OUTBOX_WORKER_LOOP_SECONDS``), or when the lease expires if the death went unnoticed.
  Consumers deduplicate by event id (the inbox).
- **Per-aggregate order per destination**: a delivery is claimed only when no earlier delivery
  (lower id) of the same ``aggregate_key`` for the same destination is ``pending`` or ``dead``.
  So event *n+1* of a booking is published only after event *n* was confirmed by that broker,
  whatever the retries, backoffs and number of parallel relays. Order is by outbox id, i.e. by
  insertion; two transactions writing events for one aggregate are serialised by the domain's
  row lock, so insertion order is commit order.
- **A dead delivery stops its aggregate** on that destination (order over liveness): later
  events of that booking wait, visible in the backlog and the admin, until the dead row is
  requeued (``outbox_requeue``) and delivered. Other aggregates and the other destination are
  not affected.
- **Nothing expires**: pending and dead rows are never deleted; purge removes only events whose
  every delivery is ``delivered``.
- **Destinations are independent**: each has its own rows, claims, pause and publisher.

Not guaranteed:

- Exactly-once on the wire (duplicates happen after crashes or lost confirms; the inbox removes them).
- Order across aggregates, or across destinations (Kafka may get an event before RabbitMQ).
- Order when a lease expires while its relay is still publishing (lease shorter than a publish):
  keep the lease well above the publishers' timeouts (15-20 s).

Modules (the SQL of all of them is in ``messaging.queries``):

- ``claims``: claim a batch (the lease, the liveness token).
- ``outcomes``: record a batch's outcome (backoff, dead, deferred; redacted errors); result types.
- ``batch``: one batch end to end (``outbox_relay_batch``); publisher errors become failures.
- ``drain``: ``outbox_relay_drain``, what the loop and the sweep run; ``pipeline``: its
  pipelined form for backlogs.
- ``pause``: the destination pause (a circuit breaker shared through the cache).
- ``publisher_cache``: one publisher per destination per process.
- ``metrics``: counters, the batch log line, backlog gauges.
- ``loop``: the worker bootstep, ``LISTEN``/``NOTIFY`` wake-ups (``OutboxRelayLoopStep``).
- ``liveness``: the advisory lock that lets another relay take a dead relay's rows at once.

Celery tasks (the sweep, the purge) stay in ``messaging.tasks``.
"""
