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
    started, lock, release = [], threading.Lock(), threading.Event()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        release.wait(timeout=30)  # every call but the first holds its thread
        return n

    results = map_ordered(lambda n: n if n == 0 else work(n), range(1000), threads=4)
    assert next(results) == 0  # the 3 other threads hold calls 1-3, the first maybe 4
    threading.Timer(0.5, release.set).start()  # lets them end once close() has begun
    results.close()  # as Ctrl-C or an exception in the caller's loop does
    # before: the 256 queued calls all ran; now only those already running finish
    assert len(started) <= 4, started
