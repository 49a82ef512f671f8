"""ProbeGate: in one process, the first create on a model not yet seen to work goes alone."""

from __future__ import annotations

import threading
import time

import pytest

from jobs.video.availability import ProbeGate

pytestmark = pytest.mark.unit


def test_threads_wait_for_the_probe_of_an_unproven_model() -> None:
    gate = ProbeGate()
    inside, most, waited = [0], [0], []
    lock = threading.Lock()

    def create() -> None:
        with gate.turn("m") as w:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)  # one exchange with the provider
            with lock:
                inside[0] -= 1
            waited.append(w)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and waited.count(False) == 1 and waited.count(True) == 5


def test_a_proven_model_goes_at_once_until_doubted() -> None:
    gate = ProbeGate()
    gate.prove("m")
    entered = threading.Event()
    release = threading.Event()

    def slow() -> None:
        with gate.turn("m"):
            entered.set()
            release.wait(2)

    t = threading.Thread(target=slow)
    t.start()
    entered.wait(2)
    with gate.turn("m") as waited:  # not blocked by the slow one
        assert waited is False
    gate.doubt("m")
    assert not gate.proven("m")
    release.set()
    t.join()
