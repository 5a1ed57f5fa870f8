"""What a Dask worker keeps between grading tasks: one object per worker, built on first use.

A local pool hands each task the state its process's initializer built (`pool.LocalPool`).  A Dask
worker has no initializer, so the grader registers a `WorkerState` plugin with the cluster
(``Client.register_plugin``): each Dask worker gets its own copy, which builds the state (the
pipeline's `Worker`: a sandbox zygote and caches) when its first task asks for it and closes it
when the Dask worker ends or the plugin is replaced.  Nothing is kept in module globals.  This
module is imported only with ``--scheduler`` (Dask is an optional dependency).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from distributed import WorkerPlugin, get_worker

__all__ = ["WorkerState", "state"]

PLUGIN_NAME = "coursekit-worker"


class WorkerState(WorkerPlugin):
    """`build()` once per Dask worker, on first use (`state`); `close()`d at teardown."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build  # pickled to every worker: a module-level function or a partial of one
        self._state: Any = None
        self._lock: threading.Lock | None = None

    def setup(self, worker: Any) -> None:
        self._lock = threading.Lock()  # built here, on the worker: a lock does not pickle

    def get(self) -> Any:
        assert self._lock is not None, "setup() runs on the worker before any task"
        with self._lock:  # a worker with several threads runs several tasks at once
            if self._state is None:
                self._state = self.build()
            return self._state

    def teardown(self, worker: Any) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None

    def __getstate__(self) -> dict:
        return {"build": self.build, "_state": None, "_lock": None}


def state() -> Any:
    """In a task on a Dask worker: the worker's state (`WorkerState`, registered by the grader)."""
    plugin = get_worker().plugins[PLUGIN_NAME]
    assert isinstance(plugin, WorkerState), f"the Dask worker's {PLUGIN_NAME} plugin is not coursekit's"
    return plugin.get()
