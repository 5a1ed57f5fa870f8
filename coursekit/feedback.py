"""Feedback in one step: ``coursekit feedback ASSIGNMENT``.

Runs nbgrader's own ``generate_feedback`` on the course (every graded student, regenerated), with
the preprocessors the course's ``nbgrader_config.py`` lists in ``GenerateFeedback.preprocessors``.
Stock ``generate_feedback`` renders the autograded notebook as it is, hidden tests included, so
when the assignment has hidden tests and none of those preprocessors removes them (a class derived
from nbgrader's ``ClearHiddenTests``), coursekit adds its own, ``coursekit.hidden.HideHiddenTests``,
right after nbgrader's ``GetGrades``: no page that ``nbgrader release_feedback`` hands to students
shows a hidden test's code or data, whatever the course's configuration.
"""

from __future__ import annotations

import glob
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearHiddenTests
from traitlets.utils.importstring import import_item

from .hidden import HIDDEN_MARK, HideHiddenTests, first_line
from .read import Course, CourseError, course_config, load_course

log = logging.getLogger(__name__)
HIDER = f"{HideHiddenTests.__module__}.{HideHiddenTests.__qualname__}"
# nbgrader's GenerateFeedback.preprocessors when the course sets none.
NBGRADER_FEEDBACK_PREPROCESSORS = ("nbgrader.preprocessors.GetGrades",
                                   "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor")


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


def feedback_preprocessors(course: Course) -> list[str]:
    """The course's GenerateFeedback.preprocessors (or nbgrader's default) with coursekit's
    HideHiddenTests after GetGrades: the list `generate_feedback` runs when the course's own
    list does not remove hidden tests."""
    listed = course_config(course.root).get("GenerateFeedback", {}).get("preprocessors", None)
    names = [p if isinstance(p, str) else f"{p.__module__}.{p.__qualname__}"
             for p in (listed if listed is not None else NBGRADER_FEEDBACK_PREPROCESSORS)]
    after = next((i + 1 for i, name in enumerate(names) if name.endswith(".GetGrades")), 0)
    return names[:after] + [HIDER] + names[after:]


def generate_feedback(course_dir: Path | str, assignment: str) -> Feedback:
    """Run `nbgrader generate_feedback --force` on the course, with coursekit's HideHiddenTests
    added when the assignment has hidden tests and the course's preprocessors keep them."""
    course = load_course(Path(course_dir))
    options = []
    if has_hidden_tests(course, assignment) and hiding_preprocessor(course) is None:
        preprocessors = feedback_preprocessors(course)
        log.info("no GenerateFeedback preprocessor of the course removes hidden tests: running %s",
                 ", ".join(preprocessors))
        options = [f"--GenerateFeedback.preprocessors={name}" for name in preprocessors]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", assignment, "--force",
                           "--log-level=ERROR", *options], cwd=course.root, env=env, capture_output=True, text=True)
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
