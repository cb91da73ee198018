"""Ordered, bounded fan-out of blocking work (I/O, TF eager decodes) onto threads."""

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_ordered(
    fn: Callable[[T], R], items: Iterable[T], threads: int = 8, window: int = 256
) -> Iterator[R]:
    """Yields `fn(item)` for each item, in input order, computed on `threads` threads.

    At most `window` results are pending at once, so memory stays bounded however long
    `items` is, and `items` may be a lazy iterator. An exception in `fn` propagates when
    its result is reached; make `fn` return errors as values to keep going past them.
    When the caller stops early (an exception such as Ctrl-C's, or `close()`), work not
    yet started is cancelled: only the calls already running are waited for.
    """
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kftransfer")
    pending: collections.deque = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
