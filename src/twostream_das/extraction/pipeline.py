"""Stages of the extraction in threads joined by bounded queues, and their wall time.

The extraction is a chain of iterators (decode -> resize -> flow -> windows -> network). Run in
one thread, every stage waits for the others. :class:`Pipeline` cuts the chain at chosen points:
the part before a cut runs in its own thread and hands its items through a bounded queue
(``queue_size`` items), so decoding, TV-L1 flow and the networks run at the same time. Threads
are enough: PyTorch's ops and OpenCV's calls release the GIL while they compute. The queues keep
memory bounded (a slow stage makes the faster ones wait) and the items and their order are the
same as in one thread, so the features are too (tests/extraction/test_extract_pipeline.py).

The first error in any stage stops every stage and is raised by :meth:`Pipeline.join`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from typing import Any, Generic, Optional, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

POLL_S = 0.05  # how often a stage blocked on a queue looks whether the pipeline was stopped


class StageClock:
    """Wall time per named stage, exclusive of nested stages (generators pull from each other).

    Thread-safe: each thread keeps its own nesting, the totals are shared. A stage named None
    (time waiting on a queue) is left out of the enclosing stage and recorded nowhere.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._local = threading.local()

    def _children(self) -> list[float]:
        """Per open stage of this thread: time spent in stages nested in it."""
        stack = getattr(self._local, "children", None)
        if stack is None:
            stack = self._local.children = []
        return stack

    @contextlib.contextmanager
    def stage(self, name: Optional[str]) -> Iterator[None]:
        children = self._children()
        start = perf_counter()
        children.append(0.0)
        try:
            yield
        finally:
            elapsed = perf_counter() - start
            own = elapsed - children.pop()
            if name is not None:
                with self._lock:
                    self.seconds[name] += own
            if children:
                children[-1] += elapsed

    def iterate(self, name: Optional[str], items: Iterable[_Item]) -> Iterator[_Item]:
        """``items``, with the time spent producing each one charged to ``name``."""
        iterator = iter(items)
        while True:
            with self.stage(name):
                try:
                    item = next(iterator)
                except StopIteration:
                    return
            yield item

    def summary(self) -> str:
        with self._lock:
            return ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())


class _Stopped(Exception):
    """Raised inside a stage when another stage failed (never reaches the caller)."""


_END = object()  # the last item of a queue


class _Task(Generic[_Result]):
    def __init__(self) -> None:
        self.result: Optional[_Result] = None


class Pipeline:
    """Threads joined by bounded queues (see the module docstring).

    Use::

        pipe = Pipeline(queue_size, clock)
        left, right = pipe.split(frames, 2)         # one thread pulls ``frames``, two readers
        task = pipe.run(lambda: consume(left))      # a thread that consumes
        pipe.join()                                 # waits; raises the first error
        task.result
    """

    def __init__(self, queue_size: int, clock: Optional[StageClock] = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self.clock = clock or StageClock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def split(self, items: Iterable[_Item], readers: int = 1) -> list[Iterator[_Item]]:
        """Pull ``items`` in a new thread; ``readers`` iterators each get every item, in order.

        The thread blocks while any reader's queue is full, so a slow reader holds the others
        back by at most ``queue_size`` items.
        """
        queues: list[queue.Queue[Any]] = [queue.Queue(self.queue_size) for _ in range(readers)]

        def produce() -> None:
            for item in items:
                for q in queues:
                    self._put(q, item)
            for q in queues:
                self._put(q, _END)

        self._start(produce)
        return [self._read(q) for q in queues]

    def thread(self, items: Iterable[_Item]) -> Iterator[_Item]:
        """``items`` pulled in a new thread (a cut of the chain with one reader)."""
        return self.split(items, 1)[0]

    def run(self, fn: Callable[[], _Result]) -> _Task[_Result]:
        """Call ``fn`` in a new thread; its return value is ``task.result`` after :meth:`join`."""
        task: _Task[_Result] = _Task()

        def call() -> None:
            task.result = fn()

        self._start(call)
        return task

    def join(self) -> None:
        """Wait for every thread; raise the first error of any stage (after stopping them all)."""
        try:
            for thread in self._threads:
                while thread.is_alive():
                    thread.join(POLL_S)  # in steps, so Ctrl-C reaches the main thread
        except BaseException:
            self._stop.set()
            raise
        errors = [e for e in self._errors if not isinstance(e, _Stopped)]
        if errors:
            raise errors[0]

    def _start(self, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as err:  # handed to join(), which raises it in the caller
                self._errors.append(err)
                self._stop.set()

        thread = threading.Thread(target=guarded, name=f"extract-{len(self._threads)}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        with self.clock.stage(None):
            while True:
                if self._stop.is_set():
                    raise _Stopped
                try:
                    q.put(item, timeout=POLL_S)
                    return
                except queue.Full:
                    continue

    def _read(self, q: queue.Queue[Any]) -> Iterator[Any]:
        while True:
            with self.clock.stage(None):
                while True:
                    if self._stop.is_set():
                        raise _Stopped
                    try:
                        item = q.get(timeout=POLL_S)
                        break
                    except queue.Empty:
                        continue
            if item is _END:
                return
            yield item
