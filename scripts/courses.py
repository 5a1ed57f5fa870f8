"""This course's folders for the scripts, the benchmarks and the lesson's tests: copy the course, let
the real nbgrader generate it, copy the result for each run, and read the grades back from its
gradebook.

The pieces are coursekit's (`coursekit.classroom`, shared with the tool's tests on their fixture
courses); here they get this course's name, folder and course id.  Both tests/ and bench/ import
this module, so that neither imports the other and a benchmark needs nothing the tests need
(pytest, Playwright).  Grades are read through nbgrader's own API, not coursekit's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from coursekit import check, classroom
from coursekit.classroom import LEFTOVERS, copy_course, expected_scores  # noqa: F401 (imported from here)
from scripts.course import ASSIGNMENT, ROOT

VENV_BIN = Path(sys.executable).parent
COURSE_FILES = ("nbgrader_config.py", "hide_hidden_tests.py", "source")
COURSE_ID = "weight-init"


def nbgrader_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses (coursekit.check.nbgrader_env): the venv's bin/ first
    on PATH (nbgrader shells out to `alembic`), no COURSEKIT_GRADEBOOK or COURSEKIT_EXCHANGE
    override, so a course copy never writes to the developer's gradebook or exchange.  A caller
    that wants them sets them itself."""
    return check.nbgrader_env()


def new_course(dest: Path, files: tuple[str, ...] = COURSE_FILES, origin: Path = ROOT) -> Path:
    """A course folder at ``dest`` holding copies of ``files`` (files or folders) from ``origin``."""
    return classroom.new_course(dest, files, origin)


def generate_assignment(course: Path, *options: str, env: dict[str, str] | None = None,
                        assignment: str = ASSIGNMENT) -> None:
    """Run the real `nbgrader generate_assignment ASSIGNMENT` in ``course``; fail with its output."""
    classroom.generate_assignment(course, assignment, *options, env=env or nbgrader_env())


def build_template(folder: Path) -> Path:
    """A course with config, master, release and a fresh gradebook, by the real generate_assignment."""
    generate_assignment(new_course(folder), "--force", "--log-level=WARN")
    return folder


def gradebook_grades(course: Path, assignment: str = ASSIGNMENT, course_id: str = COURSE_ID,
                     url: str | None = None) -> dict[tuple[str, str], tuple[float | None, bool]]:
    """{(student, grade cell): (auto_score, needs_manual_grade)} (coursekit.classroom.gradebook_grades)."""
    return classroom.gradebook_grades(course, assignment, course_id, url)


def gradebook_scores(course: Path, url: str | None = None,
                     assignment: str = ASSIGNMENT) -> dict[tuple[str, str], float | None]:
    """{(student, grade cell): auto_score} for every submission in the course's gradebook (or at `url`)."""
    return {key: score for key, (score, _) in gradebook_grades(course, assignment, url=url).items()}
