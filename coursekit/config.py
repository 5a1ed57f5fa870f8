"""Course-specific settings, read from the course's ``nbgrader_config.py``.

coursekit grades any nbgrader assignment whose tests call functions students write.  What
differs from course to course -- which of the instructor's helper modules the tests may import,
what the sandbox imports ahead of time, which frames a failing test's traceback shows, how long
and how big a submission may run -- is configured the way nbgrader configures its own
preprocessors: traits of a ``Configurable`` (`CourseKit`), set in the course's
``nbgrader_config.py`` next to nbgrader's settings::

    c.CourseKit.trusted_modules = ["public_tests.py", "init_utils.py"]
    c.CourseKit.sandbox_preload = ["numpy", "matplotlib.pyplot", "h5py"]
    c.CourseKit.memory_mb = 4096

``coursekit config`` prints every setting with its help and its value for a course.

`CourseKit` reads and checks the values once, in the grader's process (traitlets validators; the
command line's ``--wall-seconds`` and ``--workers`` are put into the same configuration first, so
they pass the same checks); `Settings` is the result as plain frozen data, because it travels
with each assignment plan to local and Dask workers.  The defaults suit any course: every ``*.py``
of the master folder is trusted, the sandbox preloads NumPy only, and the time limits are
nbgrader's own.

Time limits, every one derived here from two settings:

* ``c.ExecutePreprocessor.timeout`` (nbgrader's per-cell timeout, 30 s by default; read by
  `nbgrader_cell_seconds` as nbgrader reads it) limits each cell, each call a test makes and each
  test cell, inside the sandbox child: `Limits.cell_seconds`.
* ``c.CourseKit.wall_seconds`` (``coursekit autograde --wall-seconds``; an hour by default) is a
  safety net: the most one sandbox run may take, where nbgrader has no total.
* One run's wall-clock limit is its steps' per-cell time plus `RUN_MARGIN_SECONDS`, capped by
  ``wall_seconds`` (`Settings.run_limits`); its CPU limit follows it unless
  ``c.CourseKit.cpu_seconds`` is set.  The grader waits `WATCHDOG_GRACE_SECONDS` beyond a run's
  limit for the zygote's answer (`Limits.watchdog_seconds`), and a local pool kills a worker that
  holds one submission longer than all the runs it may make (`Settings.worker_seconds`).

`Limits` and the preload list are settings like the others: the sandbox takes them from here
(and offers `Limits` on its public face), never the other way round.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass, replace

from traitlets import Float, Integer, List, TraitError, Unicode, validate
from traitlets.config import Config, Configurable

__all__ = ["DEFAULTS", "DEFAULT_PRELOAD", "MAX_RUNS", "CourseKit", "Limits", "Settings", "nbgrader_cell_seconds",
           "settings_from"]

# What the sandbox imports once, before any submission; a course preloads more with
# c.CourseKit.sandbox_preload.
DEFAULT_PRELOAD = ("numpy", "numpy.random", "numpy.linalg", "numpy.testing")
_MIN_MEMORY_BYTES = 512 << 20


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Memory, processes and files are enforced with RLIMITs in the child."""

    wall_seconds: float = 20.0        # the whole run: loading the code and every call (the zygote kills it then)
    cell_seconds: float | None = None  # each cell, call and test, in the child (nbgrader's per-cell timeout)
    cpu_seconds: int = 10             # RLIMIT_CPU
    memory_bytes: int = 2 * 1024**3   # RLIMIT_AS: address space, including preloaded libraries
    max_processes: int = 16           # RLIMIT_NPROC (processes + threads); each run has its own uid
    open_files: int = 64              # RLIMIT_NOFILE
    output_bytes: int = 1 << 20       # captured stdout+stderr, and the result records in all
    file_bytes: int = 16 << 20        # RLIMIT_FSIZE: the largest file the code may write
    disk_bytes: int = 64 << 20        # size of the tmpfs holding the working directory
    allow_fork: bool = False          # False: seccomp refuses new processes (threads still work)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "allow_fork":
                if not isinstance(value, bool):
                    raise ValueError(f"Limits.allow_fork must be True or False, got {value!r}")
                continue
            if f.name == "cell_seconds" and value is None:
                continue
            seconds = f.name in ("wall_seconds", "cell_seconds")
            kinds = (int, float) if seconds else (int,)
            if not isinstance(value, kinds) or isinstance(value, bool) or value <= 0:
                kind = "number" if seconds else "whole number"
                raise ValueError(f"Limits.{f.name} must be a positive {kind}, got {value!r}")
        if self.memory_bytes < _MIN_MEMORY_BYTES:
            raise ValueError(f"Limits.memory_bytes must be at least {_MIN_MEMORY_BYTES >> 20} MiB: "
                             "the preloaded Python, NumPy and Matplotlib alone map about 170 MB")

    @property
    def watchdog_seconds(self) -> float:
        """How long the grader waits for the zygote's answer on a run: the zygote kills the child
        at `wall_seconds`; the grace covers a stuck zygote."""
        return self.wall_seconds + WATCHDOG_GRACE_SECONDS


_LIMITS = Limits()
NBGRADER_CELL_SECONDS = 30.0  # nbgrader's Execute.timeout when the course sets none
WALL_SECONDS = 3600.0  # c.CourseKit.wall_seconds's default: one sandbox run at most, a safety net
RUN_MARGIN_SECONDS = 10.0  # a run's start (fork, release files) and end, beyond its steps
WATCHDOG_GRACE_SECONDS = 15.0  # the grader's wait for the zygote beyond a run's own limit
MAX_RUNS = 3  # sandbox runs per submission: one that dies is repeated without what killed it (pipeline)
# A worker's own work with one submission beyond its sandbox runs (reading it, replaying its tests),
# with room for a loaded machine.
WORKER_MARGIN_SECONDS = 30.0
_COURSE_LIMITS = replace(_LIMITS, wall_seconds=WALL_SECONDS, cpu_seconds=int(WALL_SECONDS),
                         cell_seconds=NBGRADER_CELL_SECONDS)


@dataclass(frozen=True)
class Settings:
    """coursekit's settings for one course, as plain data (see `CourseKit` for their meaning)."""

    trusted_modules: tuple[str, ...] = ("*.py",)
    traceback_modules: tuple[str, ...] = ("*.py",)
    sandbox_preload: tuple[str, ...] = DEFAULT_PRELOAD
    # The course's limits: wall_seconds is c.CourseKit.wall_seconds (the most any run may take),
    # cell_seconds nbgrader's per-cell timeout (None: none); run_limits derives each run's.
    limits: Limits = _COURSE_LIMITS
    max_notebook_bytes: int = 50 * 2**20  # a notebook with many plots is a few MiB; 50 MiB is not one
    workers: int | None = None  # local worker processes; None: pipeline.default_workers()
    cpu_seconds: int | None = None  # c.CourseKit.cpu_seconds; None: a run's CPU limit is its wall-clock limit

    def run_limits(self, steps: int) -> Limits:
        """The limits of one sandbox run of `steps` cells, calls and tests.  Each step has
        `limits.cell_seconds` (nbgrader's per-cell timeout, enforced in the child), so the run as
        a whole needs no more than that per step: its wall-clock limit is that sum (plus a margin
        for starting), capped by `limits.wall_seconds` (c.CourseKit.wall_seconds).  Its CPU limit
        is the course's c.CourseKit.cpu_seconds, else the wall-clock limit: nbgrader limits only
        wall-clock time, and a run uses one core."""
        cap, cell = float(self.limits.wall_seconds), self.limits.cell_seconds
        wall = cap if cell is None else min(cap, steps * cell + RUN_MARGIN_SECONDS)
        cpu = self.cpu_seconds if self.cpu_seconds is not None else max(1, math.ceil(wall))
        return replace(self.limits, wall_seconds=wall, cpu_seconds=cpu)

    @property
    def worker_seconds(self) -> float:
        """The longest a worker may hold one submission before a local pool kills it as stuck:
        every sandbox run it may make (`MAX_RUNS`, twice when tests go to the sandbox again), each
        with the grader's wait for it, and the worker's own work."""
        return 2 * MAX_RUNS * self.limits.watchdog_seconds + WORKER_MARGIN_SECONDS

    def shows_frames_of(self, filename: str) -> bool:
        """Whether a failing test's traceback shows frames of this trusted helper file."""
        return any(fnmatch.fnmatch(filename, pattern) for pattern in self.traceback_modules)


DEFAULTS = Settings()


class CourseKit(Configurable):
    """coursekit's course-specific settings: ``c.CourseKit.<name>`` in nbgrader_config.py."""

    trusted_modules = List(Unicode(), default_value=list(DEFAULTS.trusted_modules), help="""
        The instructor's helper modules the test cells may import, as file name patterns in the
        assignment's source (master) folder, e.g. ["public_tests.py"].  coursekit runs them
        in the grader's own process when it replays the tests -- they are trusted code, read
        from the master folder and never from a submission -- and copies them to the workers
        with the assignment's plan.""").tag(config=True)

    traceback_modules = List(Unicode(), default_value=list(DEFAULTS.traceback_modules), help="""
        Which of the trusted helper modules appear in the traceback of a failing test cell,
        as file name patterns, e.g. ["public_tests.py"].  The test cell's own lines always
        appear; frames of other modules (NumPy, the standard library, helpers not listed
        here) are left out, so students read the test's message rather than its machinery.
        """).tag(config=True)

    sandbox_preload = List(Unicode(), default_value=list(DEFAULTS.sandbox_preload), help="""
        Modules the sandbox imports once, before any submission runs, so that a submission
        importing them does not pay for it every time (Matplotlib costs about 200 ms).  A
        module that cannot be imported is left out with a note.  A name that is not installed
        but is a module of the release folder (e.g. "init_utils") is imported from a copy of
        that folder, as a submission would import it; a submission that changes the file first
        imports its own version.  Import-time code runs once, with the sandbox's files and
        environment, as root, so list only trusted modules whose import does the same for every
        submission and starts no thread.  The installed libraries the master imports are added
        to this list by themselves (site-packages only, up to the first whose import starts a
        thread).""").tag(config=True)

    wall_seconds = Float(WALL_SECONDS, help="""
        Wall-clock seconds one sandbox run of a submission may take in all, a safety net.  The
        time limit that grades is nbgrader's: each cell, and each call a test makes, may run
        for the course's ExecutePreprocessor.timeout (30 s unless the course changes it), as
        in `nbgrader autograde`, which has no total; this total only stops a submission that
        holds a worker for longer (e.g. by catching its cells' timeouts).  A course may set a
        tighter total.  `coursekit autograde --wall-seconds` overrides it.""").tag(config=True)

    cpu_seconds = Integer(None, allow_none=True, help="""
        CPU seconds one sandbox run of a submission may use (RLIMIT_CPU).  Default: as many as
        the run's wall-clock limit (nbgrader limits only wall-clock time).""").tag(config=True)

    memory_mb = Integer(_LIMITS.memory_bytes >> 20, help="""
        Address space of one submission's sandbox process in MiB (RLIMIT_AS), preloaded
        libraries included; at least 512.""").tag(config=True)

    output_bytes = Integer(_LIMITS.output_bytes, help="Bytes of printed output (and of results) "
                           "kept from one submission's sandbox run.").tag(config=True)

    max_notebook_mb = Integer(DEFAULTS.max_notebook_bytes >> 20, help="""
        Largest submitted notebook coursekit reads, in MiB; a larger file scores zero with a
        note asking the student to clear its outputs.""").tag(config=True)

    workers = Integer(0, help="""
        Local worker processes that grade side by side (`coursekit autograde`, and `coursekit
        serve` unless c.Serve.workers is set); 0 (the default) means one per core and one more.
        `coursekit autograde --workers` overrides it.""").tag(config=True)

    @validate("workers")
    def _not_negative(self, proposal: dict) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"c.CourseKit.workers must be 0 (one per core, and one more) or more, "
                             f"got {proposal['value']!r}")
        return proposal["value"]

    @validate("wall_seconds", "cpu_seconds", "memory_mb", "output_bytes", "max_notebook_mb")
    def _positive(self, proposal: dict) -> float | None:
        if proposal["value"] is None and proposal["trait"].allow_none:
            return proposal["value"]
        if not proposal["value"] > 0:
            raise TraitError(f"c.CourseKit.{proposal['trait'].name} must be positive, "
                             f"got {proposal['value']!r}")
        return proposal["value"]

    def settings(self, cell_seconds: float | None = NBGRADER_CELL_SECONDS) -> Settings:
        """The values as plain data; raises ValueError with the setting's name if they clash.
        `cell_seconds`: nbgrader's per-cell timeout (None: none, so only wall_seconds applies)."""
        try:
            limits = replace(_LIMITS, wall_seconds=float(self.wall_seconds), cell_seconds=cell_seconds,
                             cpu_seconds=self.cpu_seconds or max(1, math.ceil(self.wall_seconds)),
                             memory_bytes=self.memory_mb << 20, output_bytes=self.output_bytes)
        except ValueError as error:  # e.g. too little memory for Python and NumPy
            raise ValueError(f"c.CourseKit: {error}") from None
        return Settings(trusted_modules=tuple(self.trusted_modules),
                        traceback_modules=tuple(self.traceback_modules),
                        sandbox_preload=tuple(self.sandbox_preload), limits=limits,
                        max_notebook_bytes=self.max_notebook_mb << 20, workers=self.workers or None,
                        cpu_seconds=self.cpu_seconds)


def nbgrader_cell_seconds(config: Config) -> float | None:
    """nbgrader's per-cell timeout for this configuration (None: no limit).

    nbgrader's `Execute` preprocessor is an ExecutePreprocessor, itself an nbclient
    NotebookClient, so traitlets gives it the ``timeout`` of the most specific of these
    sections the course sets (``c.Execute``, ``c.ExecutePreprocessor``, ``c.NotebookClient``),
    else nbgrader's default of 30 s; None or a value of 0 or less means no limit (nbclient).
    Read from the sections rather than by building the preprocessor, which imports nbconvert."""
    value: object = NBGRADER_CELL_SECONDS
    for section in ("NotebookClient", "ExecutePreprocessor", "Execute"):
        if section in config and "timeout" in config[section]:
            value = config[section]["timeout"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"c.ExecutePreprocessor.timeout must be a number of seconds or None, got {value!r}")
    return float(value) if value > 0 else None


def settings_from(config: Config) -> Settings:
    """coursekit's settings from a loaded nbgrader configuration (its c.CourseKit.* and
    nbgrader's per-cell timeout).

    Raises ValueError naming the setting when a value is wrong (a negative time, a string
    where a list belongs), so the grader stops before grading anything."""
    if "timeout" in config.get("CourseKit", {}):  # its earlier name, which traitlets would ignore
        raise ValueError("c.CourseKit.timeout is now called c.CourseKit.wall_seconds (the same limit): "
                         "rename it in nbgrader_config.py")
    try:
        return CourseKit(config=config).settings(nbgrader_cell_seconds(config))
    except TraitError as error:
        raise ValueError(str(error)) from None
