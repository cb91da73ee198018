"""A local run's step output: all of it to `run.log`, what matters to the terminal."""

import contextlib
import io
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def step_log(log_path: str, verbose: bool) -> Iterator["StepLog"]:
    """kfp.local's output, for the block: all of it to `log_path`, what matters to stderr.

    kfp.local reports a step cache hit only on the root logger, at INFO: `StepLog` listens
    there for the block.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # kfp.local may leave one on our stdout
    with (
        open(log_path, "w", encoding="utf-8") as log,
        contextlib.redirect_stdout(steps := StepLog(log, verbose)),
    ):
        warnings.filterwarnings("ignore", "Task .* have no effect in the current local runner")
        warnings.filterwarnings("ignore", "You may be attemping to run a task that uses custom")
        root.addHandler(steps.cache_hits)
        root.setLevel(min(level or logging.WARNING, logging.INFO))
        try:
            yield steps
        finally:
            steps.flush()
            root.handlers[:] = handlers
            root.setLevel(level)


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A step's own error: the `error: ...` line a step prints for a UserError, or the last line
# of a traceback (`SomeError: ...`).
STEP_ERROR = re.compile(r"^\s*(?:error: (.+)|(?:\w+\.)*\w*(?:Error|Exception): (.+))$", re.M)


def failure(kfp_message: str, log_path: str) -> str:
    """`step X failed: <the step's own error line>`, from kfp.local's message and the log."""
    task = re.search(r"task failed: '([^']+)'", ANSI.sub("", kfp_message))
    with open(log_path, encoding="utf-8") as log:
        errors = [a or b for a, b in STEP_ERROR.findall(log.read())]
    where = f"step {task.group(1)} failed" if task else "the local run failed"
    return f"{where}: {errors[-1]}" if errors else where


class StepLog(io.TextIOBase):
    """Where kfp.local prints: everything to `log`; to stderr, only what a user reads.

    That is kftransfer's own log lines (progress, epochs, verdicts), warnings and kfp's
    task status lines; not the executor inputs and outputs, tracebacks, or a failed step's
    error (the run's own one-line error names it). With `verbose`, everything goes to
    stderr too.
    """

    KEEP = re.compile(r"^\s*(\d\d:\d\d:\d\d (INFO|WARNING) |warning:)|Task .* finished with status")
    FAILED = re.compile(r"finished with status .*FAILURE")
    FINISHED = re.compile(r"Task '([^']+)' finished with status")

    def __init__(self, log, verbose: bool = False):
        super().__init__()
        self.log, self.verbose, self._partial = log, verbose, ""
        self.finished: dict[str, float] = {}  # task -> when kfp.local reported it done
        self.cached: list[str] = []  # tasks served from kfp.local's step cache
        self.cache_hits = _CacheHits(self)

    def writable(self) -> bool:
        """Always."""
        return True

    def write(self, text: str) -> int:
        """Logs `text`; forwards its complete lines that matter."""
        self.log.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            plain = ANSI.sub("", line)
            if done := self.FINISHED.search(plain):
                self.finished[done.group(1)] = time.time()
            if self.verbose:
                sys.stderr.write(line + "\n")
            elif self.KEEP.search(plain) and not self.FAILED.search(plain):
                sys.stderr.write(line.strip() + "\n")
        return len(text)

    def flush(self) -> None:
        """Flushes the log file."""
        self.log.flush()


class _CacheHits(logging.Handler):
    """Records kfp.local's `Task X cache hit` log records (and logs them) into a StepLog."""

    HIT = re.compile(r"Task (\S+) cache hit")

    def __init__(self, steps: StepLog):
        super().__init__(logging.INFO)
        self.steps = steps

    def emit(self, record: logging.LogRecord) -> None:
        """Notes a cache hit."""
        if hit := self.HIT.match(record.getMessage()):
            self.steps.cached.append(hit.group(1))
            self.steps.log.write(record.getMessage() + "\n")
