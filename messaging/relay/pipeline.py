"""The pipelined drain: claims, writes, confirms and records of successive batches overlap.

Used by ``messaging.relay.drain`` once a backlog shows (a batch came back full), outside any
transaction. Helper threads, each with its own database connection, claim batches n+1 and n+2
while the caller hands batch n to the broker client and awaits the outcome of batch
n - ``_IN_FLIGHT``; a recorder thread records the batches before it. Order per aggregate is kept
for the same reason parallel relays keep it: a delivery is claimable only once every earlier
delivery of its aggregate is no longer pending, and rows stay pending (leased) until recorded.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from itertools import cycle

from django.db import connection

from messaging.publishers.base import Publisher, PublishOutcome
from messaging.relay.batch import batch_begin, batch_complete, batch_finish
from messaging.relay.claims import ClaimedBatch, claim_batch, relax_durability
from messaging.relay.outcomes import BatchResult, DrainResult

# A claim (a locking query and a lease update) takes about as long as the broker client needs to
# send a batch: two claimers keep the publisher fed.
_CLAIMERS = 2
# Batches on the wire awaiting their outcome besides the newest. RabbitMQ confirms persistent
# messages once they reach the disk, so more messages in flight keep its writes batched
# (docs/performance.md).
_IN_FLIGHT = 4
_RECORDS_QUEUED = 4  # published batches waiting for the recorder thread before the publisher waits for it


def _close_thread_connection() -> None:
    connection.close()  # resolved in the calling thread: the helper thread's own connection


def drain_pipelined(drain: DrainResult, publisher: Publisher, batch_size: int | None, *, deadline: float) -> None:
    """Drain ``drain.destination`` with batches in flight on several threads until nothing is due,
    the broker is gone, or ``deadline`` (monotonic) passes; counts go into ``drain``.

    The two claimers are safe together, and their batches may come back and be published in any
    order, because claimability already encodes per-aggregate order. Claims and records touch
    disjoint rows (records are fenced on their lease)."""
    destination = drain.destination

    def claim_next() -> ClaimedBatch:
        return claim_batch(destination=destination, batch_size=batch_size)

    with ExitStack() as threads:
        claimers = [
            threads.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"outbox-claim-{destination}"))
            for _ in range(_CLAIMERS)
        ]
        records = threads.enter_context(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"outbox-record-{destination}")
        )
        helpers = [*claimers, records]
        recording: deque[Future[BatchResult]] = deque()  # queued on the recorder thread, oldest first

        def record(claim: ClaimedBatch, outcome: PublishOutcome, *, released: bool = False) -> None:
            # Queued, not awaited: the publishing thread goes on with the next batch while the
            # recorder writes this one.
            recording.append(records.submit(batch_finish, claim, outcome, released=released))
            while recording and (recording[0].done() or len(recording) > _RECORDS_QUEUED):
                drain.add(recording.popleft().result())

        try:
            for ready in [helper.submit(relax_durability) for helper in helpers]:  # connect side by side
                ready.result()
            # Claim k runs on claimers[k % n]: when claim k is taken, its claimer is free for claim k + n.
            claiming: deque[Future[ClaimedBatch]] = deque(claimer.submit(claim_next) for claimer in claimers)
            turn = cycle(claimers)
            exhausted = False
            inflight: deque[tuple[ClaimedBatch, object]] = deque()  # begun, not yet completed, oldest first
            broken = False
            while claiming and not broken:
                claim = claiming.popleft().result()
                claimer = next(turn)
                if not claim.claimed:
                    exhausted = True  # claims already under way still run and their rows are published
                    continue
                if not exhausted and time.monotonic() < deadline:
                    claiming.append(claimer.submit(claim_next))
                inflight.append((claim, batch_begin(claim, publisher)))
                while len(inflight) > _IN_FLIGHT:
                    oldest = inflight.popleft()
                    outcome = batch_complete(*oldest, publisher)
                    record(oldest[0], outcome)
                    if outcome.unavailable:
                        broken = True  # the broker is gone: later batches come back undecided
                        break
            while inflight:
                oldest = inflight.popleft()
                record(oldest[0], batch_complete(*oldest, publisher))
            released = PublishOutcome(unavailable="destination unavailable: batch released unsent")
            for prefetched in claiming:
                claim = prefetched.result()
                if claim.claimed:
                    record(claim, released, released=True)
            while recording:
                drain.add(recording.popleft().result())
        finally:
            for helper in helpers:
                helper.submit(_close_thread_connection).result()
