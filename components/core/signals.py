"""SIGTERM, the signal a stopped pod gets, as an exception, so that clean-up code runs.

Kubernetes stops a pod (preemption with graceful node shutdown, eviction, deletion) by
sending SIGTERM, and on a KFP cluster Argo's emissary passes it to the step's whole
process group (docs/kfp-backend.md); `kill PID` and `timeout` send it too. Python's
default is to die at once, skipping every `except` and `finally`. Inside
`sigterm_raises()`, SIGTERM raises `Terminated` instead; once the block has let it
through (having saved what it could), the process dies of SIGTERM as it would have.
"""

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


class Terminated(BaseException):  # noqa: N818 (like KeyboardInterrupt, not an error)
    """SIGTERM arrived: stop, keep what can be kept, and let it through."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """For the block, SIGTERM raises `Terminated`; after the block the process dies of it.

    Does nothing off the main thread (only it may set handlers) or when something else
    already handles SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def raise_terminated(*_) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # ends the process here, as SIGTERM does
        raise  # only if SIGTERM is blocked
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
