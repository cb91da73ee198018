"""Progress logging for long steps: counts, throughput and ETA at a steady cadence."""

import logging
import sys
import time

LOGGER = logging.getLogger("kftransfer")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    @property
    def stream(self):
        """The current `sys.stderr`."""
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Sends kftransfer's log records to stderr, once, without touching other loggers."""
    if not LOGGER.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False


class Progress:
    """Logs `what: done/total units (rate/s, ETA)` at most every `interval` seconds.

    Args:
        what: what is being counted, e.g. "validate images".
        total: the expected count, or None when unknown (no ETA then).
        unit: the unit's plural name.
        interval: seconds between two log lines.
    """

    def __init__(self, what: str, total: int | None, unit: str = "files", interval: float = 5.0):
        self.what, self.total, self.unit, self.interval = what, total, unit, interval
        self.done = 0
        self.start = self._last = time.perf_counter()
        self._first: tuple[float, int] | None = None  # when the first update came, its n

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        """Units per second so far."""
        return self.done / max(self.elapsed, 1e-9)

    @property
    def steady_rate(self) -> float:
        """Units per second after the first update; the overall rate until a second one.

        Leaves out start-up, such as tracing a model and filling an input pipeline.
        """
        if self._first is None or self.done == self._first[1]:
            return self.rate
        return (self.done - self._first[1]) / max(self._last_update - self._first[0], 1e-9)

    def update(self, n: int = 1) -> None:
        """Counts `n` more units and logs if the interval has passed."""
        self.done += n
        now = self._last_update = time.perf_counter()
        if self._first is None:
            self._first = (now, n)
        if now - self._last >= self.interval:
            self._last = now
            LOGGER.info("%s: %s", self.what, self._status())

    def finish(self) -> float:
        """Logs the final count and rate; returns the rate in units per second."""
        LOGGER.info(
            "%s: %d %s in %.1f s (%.0f %s/s)",
            self.what,
            self.done,
            self.unit,
            self.elapsed,
            self.rate,
            self.unit,
        )
        return self.rate

    def _status(self) -> str:
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        status = f"{count} {self.unit} ({self.rate:.0f} {self.unit}/s"
        if self.total and self.rate > 0:
            status += f", ETA {max(self.total - self.done, 0) / self.rate:.0f} s"
        return status + ")"
