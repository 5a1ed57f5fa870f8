"""Stage 1, read: the course layout, its nbgrader configuration, and the submitted notebooks.

The course's ``nbgrader_config.py`` is loaded with traitlets, the way nbgrader loads it, into
nbgrader's own ``CourseDirectory``: so ``root``, ``db_url``, ``directory_structure`` and
``course_id`` mean exactly what they mean to ``nbgrader autograde``.  The same file holds
coursekit's course-specific settings (``c.CourseKit.*``, `coursekit.config`).  A submission that cannot be
read becomes a `Unreadable` value with a reason, never an exception that stops the batch.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import stat
import warnings
from dataclasses import dataclass
from itertools import compress, repeat
from pathlib import Path
from typing import Mapping

import nbformat
from nbformat import NotebookNode
from nbformat.warnings import MissingIDFieldWarning
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from .config import DEFAULTS, Settings, settings_from

MAX_NOTEBOOK_BYTES = DEFAULTS.max_notebook_bytes  # c.CourseKit.max_notebook_mb changes it per course
MAX_JSON_DEPTH = 64  # nbformat's own structure is 6 levels deep; metadata adds a few


class CourseError(Exception):
    """The course itself is not usable (no config, no master, no gradebook entry): stop and say why."""


@dataclass(frozen=True)
class Course:
    coursedir: CourseDirectory
    settings: Settings = DEFAULTS  # c.CourseKit.* from nbgrader_config.py

    @property
    def root(self) -> Path:
        return Path(self.coursedir.root)

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id

    def folder(self, step: str, student: str, assignment: str) -> Path:
        """`<root>/<step>/<student>/<assignment>` as nbgrader's directory_structure spells it."""
        return Path(self.coursedir.format_path(step, student, assignment))

    def source_dir(self, assignment: str) -> Path:
        return self.folder(self.coursedir.source_directory, ".", assignment)

    def release_dir(self, assignment: str) -> Path:
        return self.folder(self.coursedir.release_directory, ".", assignment)

    def submitted_dir(self, student: str, assignment: str) -> Path:
        return self.folder(self.coursedir.submitted_directory, student, assignment)

    def autograded_dir(self, student: str, assignment: str) -> Path:
        return self.folder(self.coursedir.autograded_directory, student, assignment)


def course_config(course_dir: Path) -> Config:
    """`<course_dir>/nbgrader_config.py`, loaded as nbgrader loads it."""
    config_file = Path(course_dir).resolve() / "nbgrader_config.py"
    if not config_file.is_file():
        raise CourseError(f"{config_file} does not exist: pass the folder that holds the course's "
                          "nbgrader_config.py with --course-dir")
    return PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()


def load_course(course_dir: Path, overrides: Mapping[str, object] | None = None) -> Course:
    """Load `<course_dir>/nbgrader_config.py` into nbgrader's CourseDirectory and coursekit's settings.
    `overrides`: c.CourseKit.* values that take the place of the file's (the command line's
    --wall-seconds, --workers), checked by the same validators."""
    course_dir = Path(course_dir).resolve()
    config = course_config(course_dir)
    if overrides:
        config.merge(Config({"CourseKit": dict(overrides)}))
    coursedir = CourseDirectory(config=config)
    if "root" not in config.get("CourseDirectory", {}):
        coursedir.root = str(course_dir)  # nbgrader's default root is the working directory
    try:
        settings = settings_from(config)
    except ValueError as error:
        where = "the command line or " if overrides else ""
        raise CourseError(f"{where}{course_dir / 'nbgrader_config.py'}: {error}") from None
    return Course(coursedir, settings)


@dataclass(frozen=True)
class Submission:
    """One notebook a student submitted (the file may be missing or broken)."""

    student: str
    assignment: str
    notebook: str  # name without .ipynb
    path: Path


def find_submissions(course: Course, assignment: str, notebooks: list[str],
                     students: list[str] | None = None) -> list[Submission]:
    """Every (student, notebook) pair under submitted/, or for the given students only."""
    if students is None:
        pattern = Path(course.coursedir.format_path(course.coursedir.submitted_directory, "*", assignment))
        position = pattern.parts.index("*")
        students = sorted({Path(p).parts[position] for p in glob.glob(str(pattern)) if os.path.isdir(p)})
    return [Submission(student, assignment, name, course.submitted_dir(student, assignment) / f"{name}.ipynb")
            for student in students for name in notebooks]


@dataclass(frozen=True)
class Unreadable:
    reason: str


def read_bytes(path: Path, limit: int = MAX_NOTEBOOK_BYTES, dir_fd: int | None = None) -> bytes | Unreadable:
    """The file's bytes, or why they cannot be used (missing, a symbolic link, too large, not a file).

    The file is opened without following a symbolic link (the grader, often root, would read
    whatever the link points to) and without waiting on a FIFO; the checks are made on the open
    file, so it cannot be swapped between check and read.  With `dir_fd`, `path` is relative to
    that open folder (the grading service reads a student's inbound folder so)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return Unreadable(f"no submitted file {path.name}")
    except OSError as err:
        if err.errno == errno.ELOOP:
            return Unreadable(f"{path.name} is a symbolic link, which the grader never follows; "
                              "submit the file itself")
        return Unreadable(f"cannot read {path.name}: {err.strerror}")
    with os.fdopen(fd, "rb") as fh:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return Unreadable(f"{path.name} is not a regular file")
            if info.st_size > limit:
                return Unreadable(f"{path.name} is {info.st_size / 2**20:.0f} MiB, larger than the "
                                  f"{limit / 2**20:.0f} MiB a notebook may be; clear its outputs and resubmit")
            return fh.read(limit + 1)
        except OSError as err:
            return Unreadable(f"cannot read {path.name}: {err.strerror}")


def _deeper_than(value: object, limit: int) -> bool:
    """Whether JSON data nests deeper than `limit`: some value (a container's item) lies more than
    `limit` levels below `value`.  Checked level by level without recursion, visiting only the
    containers: a notebook's many strings are skipped by C code (`compress`), not one by one."""
    level = [value] if isinstance(value, (dict, list)) else []
    for depth in range(limit + 1):
        below: list = []
        for item in level:
            items = item.values() if isinstance(item, dict) else item
            if depth == limit and items:
                return True  # an item at depth limit + 1
            below += compress(items, map(isinstance, items, repeat((dict, list))))
        if not below:
            return False
        level = below
    return False


def parse_notebook(data: bytes, name: str = "the notebook") -> nbformat.NotebookNode | Unreadable:
    """A notebook (nbformat 4) from raw bytes, or why it is not one; never raises, whatever the bytes
    (every command that reads submissions, the report's too, relies on that)."""
    try:
        return _parse_notebook(data, name)
    except (Exception, RecursionError, MemoryError) as error:  # what the checks below did not foresee
        return Unreadable(f"{name} is not a notebook coursekit can read ({type(error).__name__}: "
                          f"{str(error)[:200]}); it was probably edited outside Jupyter")


def _older_format(text: str, name: str) -> nbformat.NotebookNode | Unreadable:
    """A notebook of an older format, converted by nbformat, or why it cannot be."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            return nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises many kinds on odd versions and shapes
        return Unreadable(f"{name} is not a notebook nbformat can read: {type(err).__name__}: {err}")


def _parse_notebook(data: bytes, name: str) -> nbformat.NotebookNode | Unreadable:
    if not data.strip():
        return Unreadable(f"{name} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return Unreadable(f"{name} is not UTF-8 text (byte {err.start}); save it from Jupyter and resubmit")
    try:
        # Every JSON object becomes a NotebookNode as it is decoded (what nbformat.from_dict
        # would make of the result afterwards, in one pass instead of two).
        raw = json.loads(text, object_hook=NotebookNode)
    except json.JSONDecodeError as err:
        return Unreadable(f"{name} is not JSON ({err.msg} at line {err.lineno}); "
                          "it was probably edited outside Jupyter")
    except ValueError as err:  # valid JSON Python will not read: an integer of more than 4300 digits
        return Unreadable(f"{name} holds a value Python refuses to read ({str(err)[:200]}); "
                          "it was probably edited outside Jupyter")
    except RecursionError:
        raw = None
    if raw is None or _deeper_than(raw, MAX_JSON_DEPTH):
        return Unreadable(f"{name} is nested deeper than {MAX_JSON_DEPTH} levels, which no notebook is; "
                          "it was probably edited outside Jupyter")
    if not isinstance(raw, NotebookNode) or not isinstance(raw.get("cells"), list):  # (every JSON object is one)
        return Unreadable(f"{name} is JSON but not a notebook (no list of cells)")
    if raw.get("nbformat") != 4:
        return _older_format(text, name)
    # Version 4: check only what grading relies on; full schema validation costs more than grading.
    for cell in raw["cells"]:
        if not (isinstance(cell, dict) and isinstance(cell.get("cell_type"), str)
                and isinstance(cell.get("source", ""), (str, list))
                and isinstance(cell.setdefault("metadata", NotebookNode()), dict)):
            return Unreadable(f"{name} has a malformed cell (a cell needs a type, a source and metadata)")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(map(str, cell["source"]))
        cell.setdefault("source", "")
    raw.setdefault("metadata", NotebookNode())
    return raw
