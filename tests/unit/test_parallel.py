"""`map_ordered`: input order, and work not started is cancelled when the caller stops."""

import threading
import time

from kftransfer.components.core.parallel import map_ordered


def test_results_come_in_input_order_whatever_finishes_first():
    def slow_first(n: int) -> int:
        time.sleep(0.05 if n == 0 else 0)
        return n * n

    assert list(map_ordered(slow_first, range(50), threads=4)) == [n * n for n in range(50)]


def test_a_caller_that_stops_early_leaves_the_queued_work_undone():
    started, lock = [], threading.Lock()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        time.sleep(0.01)
        return n

    results = map_ordered(work, range(1000), threads=4, window=256)
    assert next(results) == 0
    results.close()  # as Ctrl-C or an exception in the caller's loop does
    # before: the 256 queued calls all ran; now only those already running finish
    assert len(started) <= 1 + 4 + 4, len(started)
