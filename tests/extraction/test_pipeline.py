import threading
import time

import pytest

from twostream_das.extraction.pipeline import Pipeline, StageClock


def test_split_hands_every_item_to_every_reader_in_order():
    pipe = Pipeline(queue_size=2)
    left, right = pipe.split(iter(range(50)), 2)
    task = pipe.run(lambda: [x * 10 for x in right])
    assert list(left) == list(range(50))
    pipe.join()
    assert task.result == [x * 10 for x in range(50)]


def test_queues_are_bounded():
    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    pipe = Pipeline(queue_size=3)
    reader = pipe.thread(source())
    assert next(reader) == 0
    time.sleep(0.3)
    # item 0 was read, items 1..3 wait in the queue and item 4 waits to be put: no more
    assert len(produced) == 5
    assert list(reader) == list(range(1, 100))
    pipe.join()


def test_the_first_error_stops_every_stage_and_is_raised():
    def broken():
        yield 1
        raise RuntimeError("decoder failed")

    def endless():
        while True:
            yield 0

    pipe = Pipeline(queue_size=1)
    a, b = pipe.split(broken(), 2)
    pipe.run(lambda: list(a))
    blocked = pipe.thread(endless())  # would block forever on its full queue
    pipe.run(lambda: next(blocked))
    with pytest.raises(RuntimeError, match="decoder failed"):
        pipe.join()  # returns: nothing hangs
    assert not any(t.name.startswith("extract-") and t.is_alive()
                   for t in threading.enumerate())


def test_stage_times_are_exclusive_and_per_thread():
    clock = StageClock()

    def slow(n, seconds):
        for i in range(n):
            time.sleep(seconds)
            yield i

    pipe = Pipeline(queue_size=1, clock=clock)
    inner = pipe.thread(clock.iterate("inner", slow(4, 0.05)))  # 0.2 s in its own thread
    pipe.run(lambda: list(clock.iterate("outer", (time.sleep(0.025) or x for x in inner))))
    pipe.join()
    # outer's own time is its sleeps (4 x 25 ms), not the ~0.2 s it waited for inner's items
    assert 0.2 <= clock.seconds["inner"] < 0.35
    assert 0.1 <= clock.seconds["outer"] < 0.18
    assert set(clock.seconds) == {"inner", "outer"}
