"""Feedback in one step: ``coursekit feedback ASSIGNMENT``.

Runs nbgrader's own ``generate_feedback`` on the course (every graded student, regenerated), with
the preprocessors the course's ``nbgrader_config.py`` lists in ``GenerateFeedback.preprocessors``.
Stock ``generate_feedback`` renders the autograded notebook as it is, hidden tests included, so
before anything is generated this checks that, when the assignment has hidden tests, one of those
preprocessors removes them: a class derived from nbgrader's ``ClearHiddenTests``, such as this
course's ``hide_hidden_tests.HideHiddenTests``.  Without one it refuses, saying what to add,
rather than write pages that ``nbgrader release_feedback`` would hand to students.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearHiddenTests
from traitlets.utils.importstring import import_item

from .class_report import HIDDEN_MARK, first_line
from .read import Course, CourseError, course_config, load_course


@dataclass(frozen=True)
class Feedback:
    pages: list[Path]  # one HTML page per graded student and notebook
    log: str  # nbgrader's output, for when something went wrong


def has_hidden_tests(course: Course, assignment: str) -> bool:
    """Whether any notebook of the assignment, as the gradebook stores it, has a hidden-test region."""
    try:
        with Gradebook(course.db_url, course.course_id) as gb:
            return any(HIDDEN_MARK in cell.source for nb in gb.find_assignment(assignment).notebooks
                       for cell in nb.source_cells)
    except MissingEntry:
        raise CourseError(f"the gradebook has no assignment {assignment!r}: run "
                          f"`nbgrader generate_assignment {assignment}` and grade it first") from None


def hiding_preprocessor(course: Course) -> str | None:
    """The first of the course's GenerateFeedback.preprocessors that removes hidden tests, or None."""
    names = course_config(course.root).get("GenerateFeedback", {}).get("preprocessors", [])
    # nbgrader imports them with the course folder first on sys.path (NbGrader.init_syspath); so here.
    sys.path.insert(0, str(course.root))
    try:
        for name in names:
            try:
                cls = import_item(name) if isinstance(name, str) else name
            except ImportError as error:
                raise CourseError(f"GenerateFeedback.preprocessors lists {name!r}, which cannot be "
                                  f"imported from {course.root}: {error}") from None
            if isinstance(cls, type) and issubclass(cls, ClearHiddenTests):
                return f"{cls.__module__}.{cls.__qualname__}"
    finally:
        sys.path.remove(str(course.root))
    return None


def generate_feedback(course_dir: Path | str, assignment: str) -> Feedback:
    """Check the course hides hidden tests, then run `nbgrader generate_feedback --force` on it."""
    course = load_course(Path(course_dir))
    if has_hidden_tests(course, assignment) and hiding_preprocessor(course) is None:
        raise CourseError(
            f"feedback on {assignment!r} would show its hidden tests' code and data: nbgrader's "
            "generate_feedback renders the autograded notebook, where they were put back.  Add a "
            "preprocessor derived from nbgrader.preprocessors.ClearHiddenTests to "
            "c.GenerateFeedback.preprocessors in nbgrader_config.py (docs/grading.md shows this "
            "course's HideHiddenTests)")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", assignment, "--force",
                           "--log-level=ERROR"], cwd=course.root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise CourseError(f"nbgrader generate_feedback failed:\n{(done.stdout + done.stderr)[-3000:]}")
    feedback = Path(course.coursedir.format_path(course.coursedir.feedback_directory, "*", assignment))
    pages = sorted(Path(p) for p in glob.glob(str(feedback / "*.html")))
    return Feedback(pages, done.stdout + done.stderr)


# --- What a student may see of one graded notebook (coursekit serve) ---------------------------------

GRADED_LATER = "graded after the due date"
HIDDEN_MESSAGE_CHARS = 200  # as HideHiddenTests.max_message: a hidden test's failure in one line


@dataclass(frozen=True)
class ShownTest:
    """One test cell as its feedback shows it: `score` and `message` are None while it stays hidden."""

    grade_id: str
    max_score: float
    score: float | None
    message: str | None
    hidden: bool


def hidden_tests(cells: dict[str, str]) -> set[str]:
    """The test cells (grade id -> master source) that hold a hidden-test region."""
    return {grade_id for grade_id, source in cells.items() if HIDDEN_MARK in source}


def shown_tests(scores: dict[str, float], max_scores: dict[str, float], messages: dict[str, str | None],
                hidden: set[str], *, show_hidden: bool) -> list[ShownTest]:
    """The results a student may see.  A hidden test shows neither pass/fail, message nor points
    unless `show_hidden` (after the due date, or a practice assignment); even then its message is
    its first line only, never its code or data."""
    shown = []
    for grade_id in scores:
        if grade_id in hidden and not show_hidden:
            shown.append(ShownTest(grade_id, max_scores[grade_id], None, None, True))
            continue
        message = messages.get(grade_id)
        if message and grade_id in hidden:
            message = first_line(message, HIDDEN_MESSAGE_CHARS)
        shown.append(ShownTest(grade_id, max_scores[grade_id], scores[grade_id], message, grade_id in hidden))
    return shown
