"""How a step or a run stops: SIGTERM as an exception, and no step left running alone.

Kubernetes stops a pod (preemption with graceful node shutdown, eviction, deletion) by
sending SIGTERM, and on a KFP cluster Argo's emissary passes it to the step's whole
process group (docs/kfp-backend.md); `kill PID` and `timeout` send it too. Python's
default is to die at once, skipping every `except` and `finally`. Inside
`sigterm_deferred()`, SIGTERM makes the block's next `check()` raise `Terminated`
instead; once the block has let it through (having saved what it could), the process
dies of SIGTERM as it would have. In a pod that save gets about a second: the launcher
dies of the same SIGTERM, and the emissary's exit then kills the container's processes
(docs/kfp-backend.md), so steps also save on their own every minute.

`sigterm_raised()` makes SIGTERM raise `Terminated` at once, as Ctrl-C raises
KeyboardInterrupt, for code that only waits on other processes (a local run).

A step whose runner dies (`kftransfer run` killed with `kill PID`, which reaches it
alone) would run on to its end, orphaned: `stop_when_orphaned()` stops it instead.
"""

import contextlib
import os
import select
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator


class Terminated(BaseException):  # noqa: N818 (like KeyboardInterrupt, not an error)
    """SIGTERM arrived: stop, keep what can be kept, and let it through."""


@contextlib.contextmanager
def _on_first_arrival(
    signum: int, default: Callable | int, act: Callable[[], None]
) -> Iterator[bool]:
    """For the block, `signum`'s first arrival puts `default` back, then calls `act()`.

    Yields whether the handler was set: only the main thread may set one, and a handler
    that is not `default` (ignored, or someone else's) is left alone. `default` is put
    back after the block too.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signum) is not default
    ):
        yield False
        return

    def handle(*_) -> None:
        signal.signal(signum, default)
        act()

    signal.signal(signum, handle)
    try:
        yield True
    finally:
        signal.signal(signum, default)


@contextlib.contextmanager
def signal_noted(signum: int, default: Callable | int) -> Iterator[threading.Event | None]:
    """For the block, signal `signum`'s first arrival only sets the yielded event.

    The caller decides what the signal does, at a point where that is safe; a second one
    gets `default` at once (Ctrl-C twice stops a command stuck waiting), as does any after
    the block. Yields None and changes nothing off the main thread (only it may set
    handlers), or when the signal's handler is not `default` (ignored, or someone else's).
    """
    arrived = threading.Event()
    with _on_first_arrival(signum, default, arrived.set) as handled:
        yield arrived if handled else None


@contextlib.contextmanager
def sigterm_raised() -> Iterator[None]:
    """For the block, SIGTERM raises `Terminated` where it lands, as Ctrl-C raises its error.

    Only for code that waits on other processes (a local run waiting on its steps): code
    running TensorFlow uses `sigterm_deferred`. A second SIGTERM kills as usual. Changes
    nothing where `signal_noted` would not.
    """

    def raise_terminated() -> None:
        raise Terminated

    with _on_first_arrival(signal.SIGTERM, signal.SIG_DFL, raise_terminated):
        yield


@contextlib.contextmanager
def sigterm_deferred() -> Iterator[Callable[[], None]]:
    """For the block, SIGTERM is noted; the yielded `check()` raises `Terminated` after it.

    The block calls `check()` where stopping is safe (between two images, two batches),
    not wherever the signal lands: an exception raised in the middle of TensorFlow's
    Python code can leave its C++ side aborting the process (SIGABRT) instead. After the
    block, a process that got SIGTERM dies of it, as it would have without the block.
    Where `signal_noted` changes nothing, neither does this: `check()` never raises.
    """
    arrived = None

    def check() -> None:
        if arrived is not None and arrived.is_set():
            raise Terminated

    try:
        with signal_noted(signal.SIGTERM, signal.SIG_DFL) as arrived:
            yield check
    finally:
        if arrived is not None and arrived.is_set():
            os.kill(os.getpid(), signal.SIGTERM)  # ends the process here, as SIGTERM does


def stop_when_orphaned() -> None:
    """Sends this process SIGTERM once the reader of its stdout is gone.

    A step's stdout is a pipe to what runs it: kfp.local in `kftransfer run`, KFP's
    launcher in a pod. If that dies, nothing waits for the step any more, and a
    fine-tuning would burn its CPU or GPU for hours. A daemon thread waits, without using
    the CPU, for the pipe to say that its reader has closed it, then stops the process as
    Kubernetes would: with SIGTERM, so that `sigterm_deferred` blocks keep their work. Does
    nothing when stdout is not a pipe, or where `select.poll` is missing.
    """
    try:
        fd = sys.stdout.fileno()
        is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file
        return
    if is_pipe and hasattr(select, "poll"):
        watch = threading.Thread(
            target=_terminate_when_reader_gone, args=(fd,), name="orphan-watch", daemon=True
        )
        watch.start()


def _terminate_when_reader_gone(fd: int) -> None:
    poller = select.poll()
    poller.register(fd, 0)  # no event asked for: POLLERR and POLLHUP come anyway
    for _, events in poller.poll():
        if events & (select.POLLERR | select.POLLHUP):  # Linux: POLLERR; others: POLLHUP
            os.kill(os.getpid(), signal.SIGTERM)
