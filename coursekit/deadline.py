"""A time limit on the grader's own work with a submission's text, in any thread.

The worker turns each student cell into the Python a kernel runs (IPython's input transformer) and
analyses it (`ast`); both are Python code whose cost depends on the text.  IPython's transformer,
for one, tokenizes the whole cell again after each of up to 500 rewrites, so a cell of 100 000
characters made of short lines of ``?``, ``!`` or ``%`` syntax costs minutes.  Sizes are capped
(`extract.MAX_CELL_CHARS`, `read.MAX_NOTEBOOK_BYTES`), but a cap on size does not bound such work:
this module bounds its time.

`time_limit` raises `WorkTimeout` in the thread that runs the work once `seconds` have passed.  It
asks the interpreter to raise it (``PyThreadState_SetAsyncExc``), which interrupts Python code
between two bytecodes like a signal would, but also in a thread that is not the main one (a Dask
worker runs tasks in threads, where ``SIGALRM`` cannot reach).  Work done inside one call into C
(``json.loads``, ``ast.parse``, ``compile``, a regular expression) is not interrupted; those are
linear or bounded by the size caps.  `WorkTimeout` derives from BaseException so that library code
which catches ``Exception`` cannot swallow it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["WorkTimeout", "time_limit"]


class WorkTimeout(BaseException):
    """The work ran past its time limit (raised in the thread that was doing it)."""


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Have the interpreter raise `exc_type` in the thread (None: cancel a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc_type) if exc_type else None)


@contextmanager
def time_limit(seconds: float, message: str) -> Iterator[None]:
    """Raise WorkTimeout(message) in the code of the ``with`` block after `seconds`."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    armed = [True]

    def expire() -> None:
        with lock:
            if armed[0]:
                armed[0] = False
                _raise_in(thread_id, WorkTimeout)

    def disarm() -> None:
        timer.cancel()
        with lock:
            if not armed[0]:  # it fired: drop the exception if it is still pending
                _raise_in(thread_id, None)
            armed[0] = False

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        try:
            yield
        finally:
            disarm()  # a pending WorkTimeout may be raised here: the handler below disarms again
    except WorkTimeout:
        disarm()
        raise WorkTimeout(message) from None
