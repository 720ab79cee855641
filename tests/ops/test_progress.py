"""Long commands and scripts print a progress line every few seconds, not per item and not never."""

from __future__ import annotations

import importlib.util
import sys

from messaging.management.progress import Progress
from tests.ops.conftest import ROOT


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_the_first_update_then_at_most_one_line_per_interval():
    # given a progress reporter every 5 s on a fake clock
    clock, lines = _Clock(), []
    progress = Progress("purged", total=1000, every=5, write=lines.append, clock=clock)

    # when updates come every second for 12 s
    for second in range(13):
        clock.now = 100.0 + second
        progress.update(second * 10)

    # then lines at 0, 5 and 10 s only, with count, total, rate and elapsed time
    assert lines == ["purged: 0/1000 (0/s, 0 s)", "purged: 50/1000 (10/s, 5 s)", "purged: 100/1000 (10/s, 10 s)"]


def test_progress_force_prints_a_last_line_whatever_the_interval():
    clock, lines = _Clock(), []
    progress = Progress("re-driven", every=5, write=lines.append, clock=clock)
    progress.update(1)
    clock.now += 1
    progress.update(2, "1 failed", force=True)
    assert len(lines) == 2
    assert lines[-1] == "re-driven: 2 (2/s, 1 s, 1 failed)"


def test_the_soak_sampler_prints_bookings_backlog_and_the_current_fault_every_few_seconds(capsys, monkeypatch):
    # given the soak script's sampler with two samples five seconds apart, during a fault
    spec = importlib.util.spec_from_file_location("soak_under_test", ROOT / "bench" / "soak.py")
    soak = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "soak_under_test", soak)
    spec.loader.exec_module(soak)
    clock = _Clock()
    monkeypatch.setattr(soak.time, "monotonic", clock)
    sampler = soak.Sampler(0.0, answered=lambda: "120/1000 bookings answered", faults=[{"fault": "rabbitmq restart"}])

    # when
    sampler.samples.append({"t": 5.0, "rabbitmq": 40, "kafka": 3})
    sampler._progress()
    clock.now += 1
    sampler._progress()  # too soon: no second line

    # then one line on stderr, nothing on stdout (which carries the JSON report)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "soak: 5 s: 120/1000 bookings answered, pending rabbitmq 40 kafka 3, rabbitmq restart in progress"
    ]
