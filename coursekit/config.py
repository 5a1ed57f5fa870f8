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

`CourseKit` reads and checks the values once, in the grader's process; `Settings` is the
result as plain frozen data, because it travels with each assignment plan to local and Dask
workers.  The defaults suit any course: every ``*.py`` of the master folder is trusted, the
sandbox preloads NumPy only, and the time limits are nbgrader's own: each cell (and each call a
test makes) may run for the course's ``ExecutePreprocessor.timeout`` (nbgrader's default, 30 s),
and a submission has no total beyond its cells' (`Settings.run_limits`).  coursekit's own limits
are a safety net above them: ``c.CourseKit.timeout`` (an hour in all, by default) stops a
submission that caught its cells' timeouts, and CPU time follows the wall-clock limit.  `Limits`
and the preload list are settings like the others: the sandbox takes them from here (and offers
`Limits` on its public face), never the other way round.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass, field, replace

from traitlets import Float, Integer, List, TraitError, Unicode, validate
from traitlets.config import Config, Configurable

__all__ = ["DEFAULTS", "DEFAULT_PRELOAD", "CourseKit", "Limits", "Settings", "nbgrader_cell_seconds",
           "settings_from"]

# What the sandbox imports once, before any submission; a course preloads more with
# c.CourseKit.sandbox_preload.
DEFAULT_PRELOAD = ("numpy", "numpy.random", "numpy.linalg", "numpy.testing")
_MIN_MEMORY_BYTES = 512 << 20


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Memory, processes and files are enforced with RLIMITs in the child."""

    wall_seconds: float = 20.0        # the whole run: loading the code and every call
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
            kinds = (int, float) if f.name == "wall_seconds" else (int,)
            if not isinstance(value, kinds) or isinstance(value, bool) or value <= 0:
                kind = "number" if f.name == "wall_seconds" else "whole number"
                raise ValueError(f"Limits.{f.name} must be a positive {kind}, got {value!r}")
        if self.memory_bytes < _MIN_MEMORY_BYTES:
            raise ValueError(f"Limits.memory_bytes must be at least {_MIN_MEMORY_BYTES >> 20} MiB: "
                             "the preloaded Python, NumPy and Matplotlib alone map about 170 MB")


_LIMITS = Limits()
NBGRADER_CELL_SECONDS = 30.0  # nbgrader's Execute.timeout when the course sets none
SAFETY_NET_SECONDS = 3600.0  # c.CourseKit.timeout's default: a whole submission, in all
RUN_MARGIN_SECONDS = 10.0  # a run's start (fork, release files) and end, beyond its steps
_SAFETY_NET = replace(_LIMITS, wall_seconds=SAFETY_NET_SECONDS, cpu_seconds=int(SAFETY_NET_SECONDS))


@dataclass(frozen=True)
class Settings:
    """coursekit's settings for one course, as plain data (see `CourseKit` for their meaning)."""

    trusted_modules: tuple[str, ...] = ("*.py",)
    traceback_modules: tuple[str, ...] = ("*.py",)
    sandbox_preload: tuple[str, ...] = DEFAULT_PRELOAD
    limits: Limits = field(default_factory=lambda: _SAFETY_NET)  # a whole submission, in all
    max_notebook_bytes: int = 50 * 2**20  # a notebook with many plots is a few MiB; 50 MiB is not one
    workers: int | None = None  # local worker processes; None: pipeline.default_workers()
    cell_seconds: float = NBGRADER_CELL_SECONDS  # nbgrader's per-cell timeout (ExecutePreprocessor.timeout)
    cpu_seconds: int | None = None  # c.CourseKit.cpu_seconds; None: a run's CPU limit is its wall-clock limit

    def run_limits(self, limits: Limits, steps: int) -> Limits:
        """The limits of one sandbox run of `steps` cells, calls and tests.  Each step has
        `cell_seconds` (nbgrader's per-cell timeout, enforced in the child), so the run as a
        whole needs no more than that per step: its wall-clock limit is that sum (plus a margin
        for starting), capped by `limits.wall_seconds` (c.CourseKit.timeout or --timeout).  Its
        CPU limit is the course's c.CourseKit.cpu_seconds, else the wall-clock limit: nbgrader
        limits only wall-clock time, and a run uses one core."""
        wall = min(float(limits.wall_seconds), steps * self.cell_seconds + RUN_MARGIN_SECONDS)
        cpu = self.cpu_seconds if self.cpu_seconds is not None else max(1, math.ceil(wall))
        return replace(limits, wall_seconds=wall, cpu_seconds=cpu)

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

    timeout = Float(SAFETY_NET_SECONDS, help="""
        Wall-clock seconds one submission may run in the sandbox in all, a safety net.  The
        time limit that grades is nbgrader's: each cell, and each call a test makes, may run
        for the course's ExecutePreprocessor.timeout (30 s unless the course changes it), as
        in `nbgrader autograde`, which has no total; this total only stops a submission that
        holds a worker for longer (e.g. by catching its cells' timeouts).  A course may set a
        tighter total.  `coursekit autograde --timeout` overrides it.""").tag(config=True)

    cpu_seconds = Integer(None, allow_none=True, help="""
        CPU seconds one submission may use in the sandbox (RLIMIT_CPU).  Default: as many as
        its wall-clock limit (nbgrader limits only wall-clock time).""").tag(config=True)

    memory_mb = Integer(_LIMITS.memory_bytes >> 20, help="""
        Address space of one submission's sandbox process in MiB (RLIMIT_AS), preloaded
        libraries included; at least 512.""").tag(config=True)

    output_bytes = Integer(_LIMITS.output_bytes, help="Bytes of printed output (and of results) "
                           "kept from one submission's sandbox run.").tag(config=True)

    max_notebook_mb = Integer(DEFAULTS.max_notebook_bytes >> 20, help="""
        Largest submitted notebook coursekit reads, in MiB; a larger file scores zero with a
        note asking the student to clear its outputs.""").tag(config=True)

    workers = Integer(0, help="""
        Local worker processes that grade side by side; 0 (the default) means one per core and
        one more.  `coursekit autograde --workers` overrides it.""").tag(config=True)

    @validate("workers")
    def _not_negative(self, proposal: dict) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"c.CourseKit.workers must be 0 (one per core, and one more) or more, "
                             f"got {proposal['value']!r}")
        return proposal["value"]

    @validate("timeout", "cpu_seconds", "memory_mb", "output_bytes", "max_notebook_mb")
    def _positive(self, proposal: dict) -> float | None:
        if proposal["value"] is None and proposal["trait"].allow_none:
            return proposal["value"]
        if not proposal["value"] > 0:
            raise TraitError(f"c.CourseKit.{proposal['trait'].name} must be positive, "
                             f"got {proposal['value']!r}")
        return proposal["value"]

    def settings(self, cell_seconds: float | None = NBGRADER_CELL_SECONDS) -> Settings:
        """The values as plain data; raises ValueError with the setting's name if they clash.
        `cell_seconds`: nbgrader's per-cell timeout (None: none, so only the total applies)."""
        try:
            limits = replace(_LIMITS, wall_seconds=float(self.timeout),
                             cpu_seconds=self.cpu_seconds or max(1, math.ceil(self.timeout)),
                             memory_bytes=self.memory_mb << 20, output_bytes=self.output_bytes)
        except ValueError as error:  # e.g. too little memory for Python and NumPy
            raise ValueError(f"c.CourseKit: {error}") from None
        return Settings(trusted_modules=tuple(self.trusted_modules),
                        traceback_modules=tuple(self.traceback_modules),
                        sandbox_preload=tuple(self.sandbox_preload), limits=limits,
                        max_notebook_bytes=self.max_notebook_mb << 20, workers=self.workers or None,
                        cell_seconds=float(cell_seconds or self.timeout), cpu_seconds=self.cpu_seconds)


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

    Raises ValueError naming the setting when a value is wrong (a negative timeout, a string
    where a list belongs), so the grader stops before grading anything."""
    try:
        return CourseKit(config=config).settings(nbgrader_cell_seconds(config))
    except TraitError as error:
        raise ValueError(str(error)) from None
