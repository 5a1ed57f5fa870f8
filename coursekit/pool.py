"""A pool of local grading processes that outlives the death of any of them.

Why not `concurrent.futures.ProcessPoolExecutor`: its workers share one call queue and one result
pipe.  A worker killed with SIGKILL (the OOM killer, an operator) while it writes its result leaves
half a message in the shared pipe; the executor's manager thread then waits in `recv()` for the
rest forever (the executor and the other workers keep the pipe's write end open), every future
stays pending and the grader hangs.  A worker killed while it holds the queue's lock blocks the
others the same way.

Here each worker process has a pipe of its own and works on one task at a time.  The grader waits
on every pipe and every process sentinel at once, with a timeout, so a dead worker is noticed
however it died: the task it was working on fails with `WorkerDied` (the caller decides whether
to try it again) and a new process takes its place.  The answers it sent before it died are taken
off its pipe first, so a task it finished is never charged with its death.  Half a message from a dead worker is an
`EOFError` on its own pipe, never a wait.  A worker that works on one task much longer than any
task may take is killed and counts as dead.  A worker announces itself ready once its
initializer ran, and tasks go only to ready workers.

Each worker also holds the next tasks (up to `HELD_TASKS` in all).  The grader is one process
that also writes the gradebook, and hands out no work while it commits a batch (about 130 ms for
100 submissions: 1.3 s of a 1,000-submission class, measured); a worker holding only the task it
had just finished sat idle until then.  A thread in the worker takes every message off its pipe
as it arrives, so sending never waits on a busy worker.  When a worker dies, only the task it was
working on fails; the ones it held go to the next worker, as if never sent.

Each task names one *shared* object (the assignment's plan) that the pool sends to a worker once,
not with every task.  What a worker process keeps between tasks (the grader's `pipeline.Worker`:
its sandbox and caches) is what its initializer returns, handed to every task it runs: the
process's state lives in that object, not in module globals.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

WATCH_SECONDS = 1.0  # how often a wait looks at the workers even when nothing arrives
START_SECONDS = 300.0  # a worker not ready after this long (initializer stuck) is replaced
STOP_SECONDS = 10.0  # how long close() waits for a worker to finish its clean-up
START_FAILURES = 3  # workers in a row that die before they are ready: the pool gives up
HELD_TASKS = 8  # per worker: the one it works on and the next ones, about 100 ms of work (see above)


class WorkerDied(Exception):
    """The worker process holding the task died (or was killed as stuck) before it answered."""


class PoolBroken(Exception):
    """Worker processes cannot be started: each one died before it was ready."""


@dataclass
class _Task:
    future: cf.Future
    fn: Callable[..., Any]
    shared: Any
    args: tuple
    started: float = 0.0  # when the worker began it (it works on its tasks in the order sent)


@dataclass
class _Slot:
    process: Any  # multiprocessing.Process
    conn: multiprocessing.connection.Connection
    started: float
    ready: bool = False
    tasks: collections.deque[_Task] = field(default_factory=collections.deque)  # sent, unanswered; oldest first
    sent: set[int] = field(default_factory=set)  # ids of the shared objects this worker holds


class LocalPool:
    """`workers` forked processes, each running `state = initializer(*initargs)` once, then tasks
    `fn(state, shared, *args)` one at a time, each holding its next ones.  `task_seconds`: the longest a
    task may take before its worker is killed as stuck; `note(message)` hears of each worker that
    died.  Drive it with `wait_first`; it runs in the caller's thread."""

    def __init__(self, workers: int, initializer: Callable[..., Any], initargs: tuple,
                 task_seconds: float, note: Callable[[str], None] = lambda message: None) -> None:
        # fork: workers start with everything this process imported (NumPy, nbgrader) already loaded.
        self._context = multiprocessing.get_context("fork")
        self._initializer, self._initargs = initializer, initargs
        self.task_seconds = task_seconds
        self._note = note  # told of every death, busy or idle: the operator should know
        self._queue: collections.deque[_Task] = collections.deque()
        self._shared: dict[int, Any] = {}  # keeps each shared object, and so its id, alive
        self._start_failures = 0
        self.broken: str | None = None
        self._slots: list[_Slot] = []
        for _ in range(workers):
            self._slots.append(self._start())

    def _start(self) -> _Slot:
        # Output buffered in this process would be written again by the child when it exits.
        sys.stdout.flush()
        sys.stderr.flush()
        ours, theirs = self._context.Pipe(duplex=True)
        others = [slot.conn for slot in self._slots if not slot.conn.closed]
        process = self._context.Process(target=_serve, args=(theirs, others, self._initializer, self._initargs,
                                                             os.getpid()), name="coursekit-worker")
        process.start()
        theirs.close()  # the child's end lives only in the child: its death is EOF here
        return _Slot(process, ours, time.monotonic())

    def submit(self, fn: Callable[..., Any], shared: Any, *args: Any) -> cf.Future:
        """Queue `fn(state, shared, *args)` (`state`: what the worker's initializer returned); the future fails with WorkerDied if its worker dies, with
        PoolBroken if no worker can start, or with what `fn` raised."""
        future: cf.Future = cf.Future()
        if self.broken:
            future.set_exception(PoolBroken(self.broken))
            return future
        self._shared.setdefault(id(shared), shared)
        self._queue.append(_Task(future, fn, shared, args))
        self._dispatch()
        return future

    def wait_first(self, futures: set[cf.Future]) -> set[cf.Future]:
        """Run the pool until at least one of `futures` is done; return the done ones."""
        while True:
            self._dispatch()
            done = {f for f in futures if f.done()}
            if done or not futures:
                return done
            self._watch(WATCH_SECONDS)

    def ready(self) -> int:
        """How many workers have run their initializer and take tasks."""
        return sum(slot.ready for slot in self._slots if not slot.conn.closed)

    def step(self, timeout: float) -> None:
        """Hand out queued tasks, then wait up to `timeout` for an answer or a death (for a caller,
        like `coursekit serve`, that also waits on other things between steps)."""
        self._dispatch()
        self._watch(timeout)

    def _dispatch(self) -> None:
        for round_ in range(HELD_TASKS):  # idle workers first: each gets one before any a second
            for i, slot in enumerate(self._slots):
                if not self._queue:
                    return
                if not slot.ready or len(slot.tasks) > round_:
                    continue
                task = self._queue.popleft()
                if not slot.tasks:
                    task.started = time.monotonic()
                slot.tasks.append(task)
                try:
                    if id(task.shared) not in slot.sent:
                        slot.conn.send(("shared", id(task.shared), task.shared))
                        slot.sent.add(id(task.shared))
                    slot.conn.send(("task", task.fn, id(task.shared), task.args))
                except (OSError, EOFError) as error:  # it died meanwhile: its sentinel would say so too
                    self._lost(i, f"its pipe broke: {error}")

    def _watch(self, timeout: float) -> None:
        """Wait up to `timeout` for an answer or a death; handle what happened."""
        live = [slot for slot in self._slots if not slot.conn.closed]
        if not live:  # broken: every task has failed already
            return
        ready = set(multiprocessing.connection.wait([s.conn for s in live] + [s.process.sentinel for s in live],
                                                    timeout))
        now = time.monotonic()
        for i, slot in enumerate(self._slots):
            if slot.conn.closed:
                continue
            dead = slot.process.sentinel in ready or not slot.process.is_alive()
            # Every answer already in the pipe first: a worker that dies after answering some of
            # its held tasks has finished those; only the one it was working on is lost.
            if (slot.conn in ready or dead) and not self._drain(slot):
                self._lost(i, self._death_cause(slot))  # dead, possibly half-way through an answer
                continue
            if dead:
                self._lost(i, self._death_cause(slot))
            elif slot.tasks and now - slot.tasks[0].started > self.task_seconds:
                self._kill(slot)
                self._lost(i, f"it held one submission for more than {self.task_seconds:.0f} s and was killed")
            elif not slot.ready and now - slot.started > START_SECONDS:
                self._kill(slot)
                self._lost(i, f"it was not ready after {START_SECONDS:.0f} s and was killed")

    def _drain(self, slot: _Slot) -> bool:
        """Take every message already in the slot's pipe; False if the pipe broke (EOF, half a
        message)."""
        try:
            while slot.conn.poll():
                self._receive(slot, slot.conn.recv())
        except (EOFError, OSError):
            return False
        return True

    def _receive(self, slot: _Slot, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            slot.ready = True
            self._start_failures = 0
        elif slot.tasks:
            task = slot.tasks.popleft()
            if slot.tasks:  # the worker has begun the one it held
                slot.tasks[0].started = time.monotonic()
            if kind == "ok":
                task.future.set_result(message[1])
            else:
                task.future.set_exception(message[1])

    @staticmethod
    def _death_cause(slot: _Slot) -> str:
        slot.process.join(STOP_SECONDS)
        code = slot.process.exitcode
        if code is None:
            return "its pipe closed"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    @staticmethod
    def _kill(slot: _Slot) -> None:
        try:
            os.kill(slot.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        slot.process.join(STOP_SECONDS)

    def _lost(self, i: int, why: str) -> None:
        """Slot i's process is gone: fail the task it worked on, queue the ones it held again,
        start another process in its place."""
        slot = self._slots[i]
        slot.conn.close()
        if slot.process.is_alive():
            self._kill(slot)
        self._note(f"a worker process died ({why}; pid {slot.process.pid}); "
                   + ("the submission it was grading gets another try" if slot.tasks else "it held no submission"))
        if slot.tasks:
            slot.tasks.popleft().future.set_exception(WorkerDied(why))
        while slot.tasks:  # not begun: first in line for the next worker, as if never sent
            self._queue.appendleft(slot.tasks.pop())
        if not slot.ready:
            self._start_failures += 1
            if self._start_failures >= START_FAILURES:
                self.broken = (f"{START_FAILURES} worker processes in a row died before they were ready "
                               f"(the last: {why})")
                while self._queue:
                    self._queue.popleft().future.set_exception(PoolBroken(self.broken))
        self._slots[i] = self._start() if not self.broken else _dead_slot(slot)

    def close(self) -> None:
        """Stop every worker: idle ones finish their clean-up (their sandboxes), others are killed."""
        for slot in self._slots:
            try:
                if not slot.tasks and not slot.conn.closed:
                    slot.conn.send(None)
                else:
                    self._kill(slot)
            except OSError:
                pass
        for slot in self._slots:
            slot.process.join(STOP_SECONDS)
            if slot.process.is_alive():
                self._kill(slot)
            if not slot.conn.closed:
                slot.conn.close()
        for task in self._queue:
            task.future.cancel()
        self._queue.clear()


def _dead_slot(slot: _Slot) -> _Slot:
    """A slot that stays empty once the pool is broken (never ready, so never given a task)."""
    return _Slot(slot.process, slot.conn, slot.started, ready=False)


def _serve(conn: multiprocessing.connection.Connection, others: list[multiprocessing.connection.Connection],
           initializer: Callable[..., Any], initargs: tuple, grader: int) -> None:
    """A worker process: initialize (its state: what the initializer returns), say so, then
    answer tasks until told to stop or the grader is gone.  A failing initializer fails every
    task with its error rather than dying, so the reason reaches the operator."""
    _die_with(grader)
    for other in others:  # the grader's ends of the other workers' pipes: not ours to hold open
        other.close()
    broken: BaseException | None = None
    state: Any = None
    try:
        state = initializer(*initargs)
    except BaseException as error:
        broken = error
    conn.send(("ready",))
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_take_messages, args=(conn, inbox), daemon=True).start()
    shared: dict[int, Any] = {}
    while True:
        message = inbox.get()
        if message is None:  # told to stop, or the grader is gone
            return
        if message[0] == "shared":
            shared[message[1]] = message[2]
            continue
        _, fn, key, args = message
        try:
            if broken is not None:
                raise broken
            reply: tuple = ("ok", fn(state, shared[key], *args))
        except BaseException as error:
            reply = ("error", error)
        try:
            conn.send(reply)
        except (OSError, EOFError):
            return
        except Exception as error:  # the answer does not pickle: say so instead
            conn.send(("error", RuntimeError(f"the worker could not send its answer: {type(error).__name__}: "
                                             f"{error}")))


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(grader: int) -> None:
    """End this worker when the grader process ends, however it ends.  A grader killed with SIGKILL
    (an operator, the OOM killer, `coursekit serve` restarted by its hub) runs no clean-up, and its
    workers, each with a sandbox zygote, were seen living on for hours; the kernel now sends them
    SIGKILL when it dies (prctl PR_SET_PDEATHSIG).  A grader already gone by now: end at once."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != grader:
        os._exit(0)


def _take_messages(conn: multiprocessing.connection.Connection, inbox: queue.SimpleQueue) -> None:
    """In a worker, beside the thread that runs tasks: move each message off the pipe as it
    arrives, so the grader's send of a held task never waits for the task before it."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the grader is gone
            message = None
        inbox.put(message)
        if message is None:
            return
