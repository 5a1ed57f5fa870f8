"""Feedback in one step: ``coursekit feedback ASSIGNMENT``.

Runs nbgrader's own ``generate_feedback`` on the course (every graded student, regenerated), with
the preprocessors the course's ``nbgrader_config.py`` lists in ``GenerateFeedback.preprocessors``.
Stock ``generate_feedback`` renders the autograded notebook as it is, hidden tests included, so
before anything is generated this checks that, when the assignment has hidden tests, one of those
preprocessors removes them: a class derived from nbgrader's ``ClearHiddenTests``, such as this
course's ``hide_hidden_tests.HideHiddenTests``.  Without one it refuses, saying what to add,
rather than write pages that ``nbgrader release_feedback`` would hand to students.

A feedback page shows student work: markdown with HTML in it, outputs a student's code made
(``text/html``, SVG, JavaScript), cell metadata, and coursekit's reasons, which quote the
student's exception messages.  Stock ``generate_feedback`` writes all of it into the page as it
is, so a student's ``<script>`` or ``onerror=`` runs in whoever opens the page (the instructor
in the formgrader, the student's classmates).  ``coursekit feedback`` has nbgrader render with
`SafeHTMLExporter`: nbconvert's HTML exporter, whose markdown (cells, ``text/markdown`` outputs,
nbgrader's comments) and HTML outputs go through ``nh3`` (the Rust sanitizer Ammonia: an allow
list of tags, attributes and URL schemes; no script, event handler, ``javascript:`` link,
``iframe`` or ``svg``), and whose notebook keeps only what the page needs, checked: outputs of
known kinds (JavaScript and widget outputs dropped, images only as base64, output metadata
dropped), nbgrader's cell metadata with the grade id escaped, no other metadata or attachments.
"""

from __future__ import annotations

import glob
import html
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nh3
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbformat import NotebookNode
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearHiddenTests
from traitlets.utils.importstring import import_item

from .class_report import HIDDEN_MARK, first_line
from .read import Course, CourseError, course_config, load_course


@dataclass(frozen=True)
class Feedback:
    pages: list[Path]  # one HTML page per graded student and notebook
    log: str  # nbgrader's output, for when something went wrong
    failed: list[str]  # students nbgrader wrote no page for (it went on with the others)


# How nbgrader names each submission it could not convert, at the end of its log.
_FAILED = re.compile(r"There was an error processing assignment '.*?' for student '(.*)'")


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
    """Check the course hides hidden tests, then run `nbgrader generate_feedback --force` on it.
    A student whose autograded notebook nbgrader cannot render is named in `failed`; the others
    get their pages (nbgrader goes on, then exits 1)."""
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
                           f"--GenerateFeedback.exporter_class={SafeHTMLExporter.__module__}.SafeHTMLExporter",
                           "--log-level=ERROR"], cwd=course.root, env=env, capture_output=True, text=True)
    log = done.stdout + done.stderr
    failed = _FAILED.findall(log)
    if done.returncode != 0 and not failed:  # not one student's notebook: nbgrader itself
        raise CourseError(f"nbgrader generate_feedback failed:\n{log[-3000:]}")
    feedback = Path(course.coursedir.format_path(course.coursedir.feedback_directory, "*", assignment))
    pages = sorted(Path(p) for p in glob.glob(str(feedback / "*.html")))
    return Feedback(pages, log, failed)


# ----------------------------------------------------------------------------- safe pages

# Outputs kept, by MIME type: how each is made safe (None: kept as text, which the template escapes).
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
_NBGRADER_FLAGS = ("grade", "solution", "locked", "task")
_STREAMS = ("stdout", "stderr")


def clean_html(text: str) -> str:
    """Student HTML as the page may show it: nh3's allow list (no script, event handler,
    ``javascript:`` URL, frame, form or SVG), links opened without access to the page."""
    return nh3.clean(text)


def _safe_output(output: Any) -> dict | None:
    """An output as the page may show it, or None to leave it out."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in _STREAMS else "stdout"
        return {"output_type": "stream", "name": name, "text": str(output.get("text", ""))}
    if kind == "error":
        traceback = output.get("traceback")
        return {"output_type": "error", "ename": str(output.get("ename", "")), "evalue": str(output.get("evalue", "")),
                "traceback": [str(line) for line in traceback] if isinstance(traceback, list) else []}
    if kind not in ("execute_result", "display_data") or not isinstance(output.get("data"), dict):
        return None
    data: dict[str, str] = {}
    for mime, value in output["data"].items():
        text = "".join(map(str, value)) if isinstance(value, list) else value
        if not isinstance(text, str):
            continue
        if mime in ("text/plain", "text/latex", "text/markdown"):  # escaped, or sanitized markdown
            data[mime] = text
        elif mime == "text/html":
            data[mime] = clean_html(text)
        elif mime in ("image/png", "image/jpeg", "image/gif") and _BASE64.fullmatch(text):
            data[mime] = text
        elif mime == "image/svg+xml":  # shown as an <img> (SafeHTMLExporter never inlines SVG)
            data[mime] = text
    safe = {"output_type": kind, "data": data, "metadata": {}}
    if kind == "execute_result":
        count = output.get("execution_count")
        safe["execution_count"] = count if isinstance(count, int) else None
    return safe


def _safe_nbgrader(meta: Any) -> dict:
    """nbgrader's cell metadata as the feedback template reads it: flags, points, score, an
    escaped grade id and the comment (which the template renders as markdown, sanitized)."""
    if not isinstance(meta, dict):
        return {}
    safe: dict[str, Any] = {flag: meta[flag] for flag in _NBGRADER_FLAGS if isinstance(meta.get(flag), bool)}
    for number in ("points", "score"):
        if isinstance(meta.get(number), (int, float)) and not isinstance(meta.get(number), bool):
            safe[number] = meta[number]
    if isinstance(meta.get("grade_id"), str):
        safe["grade_id"] = html.escape(meta["grade_id"], quote=True)
    if isinstance(meta.get("comment"), str):
        safe["comment"] = meta["comment"]
    return safe


def safe_notebook(nb: NotebookNode) -> NotebookNode:
    """The notebook with only what a feedback page needs, each part checked (module docstring)."""
    cells = []
    for cell in nb.get("cells", []):
        kind = cell.get("cell_type") if cell.get("cell_type") in ("code", "markdown", "raw") else "raw"
        source = cell.get("source", "")
        safe: dict[str, Any] = {"cell_type": kind, "source": source if isinstance(source, str) else "",
                                "metadata": {"nbgrader": _safe_nbgrader(cell.get("metadata", {}).get("nbgrader"))}}
        if not safe["metadata"]["nbgrader"]:
            safe["metadata"] = {}
        if kind == "raw":  # the template shows an HTML raw cell as it is
            safe["source"] = clean_html(safe["source"])
        if kind == "code":
            count = cell.get("execution_count")
            safe["execution_count"] = count if isinstance(count, int) else None
            outputs = cell.get("outputs")
            safe["outputs"] = [o for o in map(_safe_output, outputs if isinstance(outputs, list) else []) if o]
        cells.append(NotebookNode(safe))
    language = nb.get("metadata", {}).get("language_info", {})
    name = language.get("name") if isinstance(language, dict) else None
    metadata = {"language_info": {"name": name}} if isinstance(name, str) and re.fullmatch(r"[\w+.-]+", name) else {}
    return NotebookNode({"cells": cells, "metadata": NotebookNode(metadata), "nbformat": 4, "nbformat_minor": 5})


class SafeHTMLExporter(HTMLExporter):
    """nbconvert's HTMLExporter for pages that show student work (module docstring): the
    notebook is made safe after every preprocessor ran (nbgrader's GetGrades adds the comments),
    markdown is rendered, then sanitized, and SVG is never inlined (an ``<img>`` runs no script)."""

    def _preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        nb, resources = super()._preprocess(nb, resources)
        return safe_notebook(nb), resources

    def _init_resources(self, resources: Any) -> Any:
        resources = super()._init_resources(resources)
        resources["should_not_encode_svg"] = False
        return resources

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        return clean_html(super().markdown2html(context, source))


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
