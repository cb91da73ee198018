"""Progress: the steady rate leaves the first update's start-up out."""

from kftransfer.components.core import progress


def test_steady_rate_leaves_out_the_start_up_before_the_first_update(monkeypatch):
    clock = iter([0.0, 10.0, 11.0, 12.0, 12.0])  # start, then three updates; the end
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    counter = progress.Progress("extract", total=96, interval=1e9)
    for _ in range(3):
        counter.update(32)  # at 10 s (start-up: tracing), 11 s, 12 s
    assert counter.steady_rate == 32.0  # 64 images in the 2 s after the first batch
    assert counter.rate == 8.0  # 96 images in 12 s, start-up included
