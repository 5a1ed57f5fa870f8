"""The local worker pool with real forked processes: a worker that dies or hangs costs only the
task it was working on, which fails with WorkerDied, and a new process takes the next tasks
(also the one the dead worker held); a worker that cannot start fails its tasks with its error
instead of looping; a worker holds its next task, so it goes on while the grader is busy."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from coursekit.pool import LocalPool, PoolBroken, WorkerDied
from tests.helpers import KILLED


def nothing() -> None:
    pass


def refuse_to_start() -> None:
    raise RuntimeError("no sandbox on this machine")


def die_on_start() -> None:
    os._exit(3)


def work(_state: None, shared: dict, what: str, payload: bytes = b"") -> str:
    if what.startswith("wait for "):  # until the test creates the file, or 20 s
        path = what.removeprefix("wait for ")
        for _ in range(200):
            if os.path.exists(path):
                return "released"
            time.sleep(0.1)
        return "gave up waiting"
    if what == "when":
        return f"began at {time.monotonic()} with {len(payload)} bytes"  # one clock for all processes
    if what == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "hang":
        time.sleep(3600)
    if what == "big":  # larger than a pipe's buffer: a kill while sending it leaves half a message
        return "x" * (4 << 20)
    return f"{shared['greeting']} {what} from {os.getpid()}"


def finish(pool: LocalPool, futures: list) -> None:
    pending = set(futures)
    while pending:
        pending -= pool.wait_first(pending)


@contextmanager
def one_task(initializer: Callable[[], None]) -> Iterator[tuple[LocalPool, Future]]:
    """A pool of one worker started with ``initializer``, and one task submitted and finished."""
    with closing(LocalPool(1, initializer, (), task_seconds=60)) as pool:
        future = pool.submit(work, {}, "a")
        finish(pool, [future])
        yield pool, future


def test_a_worker_killed_with_sigkill_costs_only_its_task_and_is_replaced():
    notes: list[str] = []
    with closing(LocalPool(2, nothing, (), task_seconds=60, note=notes.append)) as pool:
        shared = {"greeting": "hello"}
        futures = [pool.submit(work, shared, what) for what in ["a", "die", "b", "c", "d"]]
        finish(pool, futures)
        with pytest.raises(WorkerDied, match=KILLED):
            futures[1].result()
        answers = [futures[i].result() for i in (0, 2, 3, 4)]
        assert [a.split(" from ")[0] for a in answers] == ["hello a", "hello b", "hello c", "hello d"]
        assert len(notes) == 1
        assert re.match(rf"a worker process died \(({KILLED})[^;]*; pid ", notes[0]), notes[0]
        assert notes[0].endswith("); the submission it was grading gets another try")
        later = pool.submit(work, shared, "e")  # the replacement serves new tasks
        finish(pool, [later])
        assert later.result().startswith("hello e")


def test_a_worker_killed_while_it_sends_a_large_answer_is_noticed_not_waited_for():
    with closing(LocalPool(1, nothing, (), task_seconds=60)) as pool:
        warm = pool.submit(work, {"greeting": "hi"}, "warm")
        finish(pool, [warm])
        pid = int(warm.result().rsplit(" ", 1)[1])
        big = pool.submit(work, {}, "big")  # sent at once: the worker is ready and idle
        time.sleep(1)  # it is sending: 4 MiB does not fit the pipe while nobody reads
        os.kill(pid, signal.SIGKILL)
        finish(pool, [big])
        with pytest.raises(WorkerDied):
            big.result()
        again = pool.submit(work, {"greeting": "hi"}, "again")
        finish(pool, [again])
        assert again.result().startswith("hi again")


def test_a_worker_that_holds_a_task_too_long_is_killed_and_its_task_fails():
    with closing(LocalPool(1, nothing, (), task_seconds=2)) as pool:
        hung = pool.submit(work, {}, "hang")
        after = pool.submit(work, {"greeting": "hi"}, "next")
        finish(pool, [hung, after])
        with pytest.raises(WorkerDied, match="more than 2 s"):
            hung.result()
        assert after.result().startswith("hi next")


def test_an_initializer_that_fails_fails_each_task_with_its_error():
    with one_task(refuse_to_start) as (_, future):
        with pytest.raises(RuntimeError, match="no sandbox on this machine"):
            future.result()


def test_workers_that_die_while_starting_break_the_pool_instead_of_restarting_forever():
    with one_task(die_on_start) as (pool, future):
        with pytest.raises(PoolBroken, match="died before they were ready .*exit status 3"):
            future.result()
        with pytest.raises(PoolBroken):
            pool.submit(work, {}, "b").result(timeout=0)


def test_closing_the_pool_leaves_no_worker_process():
    pool = LocalPool(2, nothing, (), task_seconds=60)
    futures = [pool.submit(work, {"greeting": "hi"}, str(i)) for i in range(6)]
    finish(pool, futures)
    pids = {int(f.result().rsplit(" ", 1)[1]) for f in futures}
    pool.close()
    assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # exited and reaped
            os.kill(pid, 0)


def test_a_worker_that_dies_costs_only_the_task_it_was_working_on_not_the_one_it_held():
    with closing(LocalPool(1, nothing, (), task_seconds=60)) as pool:
        finish(pool, [pool.submit(work, {}, "warm")])  # ready: the next two go to it at once
        dies, held = pool.submit(work, {}, "die"), pool.submit(work, {"greeting": "hi"}, "held")
        finish(pool, [dies, held])
        with pytest.raises(WorkerDied, match=KILLED):
            dies.result()
        assert held.result().startswith("hi held")


def test_a_worker_begins_the_task_it_holds_while_the_grader_is_busy(tmp_path):
    """The grader hands out work only between its own jobs (e.g. a gradebook commit); the held
    task keeps the worker going meanwhile, and sending it, even larger than any pipe's buffer,
    does not wait for the task before it."""
    release = tmp_path / "release"
    with closing(LocalPool(1, nothing, (), task_seconds=60)) as pool:
        finish(pool, [pool.submit(work, {}, "warm")])
        first = pool.submit(work, {}, f"wait for {release}")
        second = pool.submit(work, {}, "when", b"x" * (16 << 20))  # returns once sent
        release.touch()
        time.sleep(2)  # the grader busy elsewhere: no wait_first, so nothing is handed out now
        busy_until = time.monotonic()
        finish(pool, [first, second])
        assert first.result() == "released"
        began, size = second.result().removeprefix("began at ").split(" with ")
        assert size == f"{16 << 20} bytes"
        assert float(began) < busy_until


def test_answers_a_worker_sent_before_it_died_count_and_only_its_current_task_is_lost():
    """The worker answers three held tasks and dies in the fourth while the grader is busy
    elsewhere: when the grader looks, the answers and the death are there at once."""
    with closing(LocalPool(1, nothing, (), task_seconds=60)) as pool:
        shared = {"greeting": "hi"}
        warm = pool.submit(work, shared, "warm")
        finish(pool, [warm])
        pid = int(warm.result().rsplit(" ", 1)[1])
        futures = [pool.submit(work, shared, what) for what in ["a", "b", "c", "die"]]  # all sent now
        stat = Path(f"/proc/{pid}/stat")
        for _ in range(200):  # no wait_first meanwhile: nothing is taken off the pipe
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":  # dead, not yet reaped by the pool
                break
            time.sleep(0.1)
        finish(pool, futures)
        assert [f.result().split(" from ")[0] for f in futures[:3]] == ["hi a", "hi b", "hi c"]
        with pytest.raises(WorkerDied, match="killed by SIGKILL"):
            futures[3].result()
