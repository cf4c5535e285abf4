"""A small pool of daemon worker threads for the admission loop's backend calls and writes.

The standard ``ThreadPoolExecutor`` joins its threads when the interpreter exits, so one
thread blocked in a Ray or HTTP call held the operator for as long as that call lasted after
SIGINT. These threads are daemons: :meth:`Workers.shutdown` cancels what has not started and
returns at once; a call in flight dies with the process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class Workers:
    """``size`` daemon threads taking calls from one queue; ``submit`` returns a Future."""

    def __init__(self, size: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, size))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            self._queue.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Cancel the calls not started; the threads end after their current call."""
        with self._lock:
            self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as err:  # handed to whoever waits on the future
                future.set_exception(err)
            else:
                future.set_result(result)
