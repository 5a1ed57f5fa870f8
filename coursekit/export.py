"""Grades out of the gradebook: the files an LMS imports, and the per-cell table.

    coursekit export ASSIGNMENT --format canvas|moodle|csv [--output FILE]

Every file goes through `coursekit.csvfile.write_csv`, the one CSV writer, so a student id or name
that begins like a spreadsheet formula is written as text.  What each format holds:

canvas
    Canvas's gradebook import file (Grades > Import), laid out as Canvas's own export: the columns
    ``Student, ID, SIS User ID, SIS Login ID, Section`` and one column per assignment; the row after
    the header is the "Points Possible" row (its first cell indented, as Canvas writes it) with the
    assignment's maximum score.  Canvas matches a row to a student by ID, SIS User ID or SIS Login
    ID; the file fills "SIS Login ID" with the nbgrader student id (the hub's user name, which
    README's LTI set-up makes the Canvas login id) and "ID" with the gradebook's ``lms_user_id``
    when it is a Canvas user id (digits).  "Student" is "Last, First".  A column named like an
    existing assignment, or ``Name (canvas id)``, updates it; another name makes a new one.
moodle
    Moodle's grade import file (Grades > Import > CSV file): a header row, then one row per student
    with an identifier column ("Username", the nbgrader student id; "Email address" also, so either
    can be mapped on Moodle's import page) and the grade item's column.
csv
    The per-cell table: one row per student with each graded cell's score, the total, the maximum
    and the reason points were lost (`cell_table`, from the class report's results).  The class
    report's grades.csv keeps nbgrader's export columns, which scripts that read ``nbgrader export``
    already understand.

Scores are nbgrader's: the sum of the cells' grades (manual grades included) less the late
penalty, as ``nbgrader export`` computes them.  A student without a graded submission gets an empty
cell, which both LMSs read as "no grade" rather than zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from nbgrader.api import Gradebook, MissingEntry

from .csvfile import Cell, write_csv
from .read import CourseError, load_course

if TYPE_CHECKING:
    from .class_report import ClassResults

__all__ = ["FORMATS", "StudentGrade", "cell_table", "export_grades", "read_grades"]

FORMATS = ("canvas", "moodle", "csv")
CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_POSSIBLE = "    Points Possible"  # Canvas's export indents it; its import reads it so
MOODLE_FIXED = ["Username", "Email address"]


@dataclass(frozen=True)
class StudentGrade:
    """One student's grade for an assignment, as the gradebook holds it."""

    student: str  # nbgrader student id
    first_name: str
    last_name: str
    email: str
    lms_user_id: str  # the LMS's id of the student (the LTI user id after an LTI launch), or ""
    score: float | None  # None: no graded submission
    max_score: float
    submitted: datetime | None  # when the graded submission was made (UTC)
    seconds_late: float
    pending_manual: bool = False  # submitted, but a manually graded cell still waits for its grade

    @property
    def display_name(self) -> str:
        """"Last, First" as Canvas shows a student, or the student id if the gradebook has no name."""
        names = [n for n in (self.last_name, self.first_name) if n]
        return ", ".join(names) if names else self.student


def _utc(moment: datetime | None) -> datetime | None:
    """nbgrader stores naive UTC datetimes."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def read_grades(course_dir: Path | str, assignment: str) -> list[StudentGrade]:
    """Every student in the course's gradebook with their grade for `assignment` (None if ungraded)."""
    course = load_course(Path(course_dir))
    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            stored = gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(f"the gradebook has no assignment {assignment!r}: run "
                              f"`nbgrader generate_assignment {assignment}` and grade it first") from None
        max_score = float(stored.max_score)
        graded: dict[str, tuple[float | None, datetime | None, float, bool]] = {}
        for submission in stored.submissions:
            if not submission.notebooks:
                continue
            pending = any(nb.needs_manual_grade for nb in submission.notebooks)
            penalty = float(submission.late_submission_penalty or 0.0)
            graded[submission.student.id] = (None if pending else float(submission.score) - penalty,
                                             _utc(submission.timestamp),
                                             float(submission.total_seconds_late or 0.0), pending)
        grades = []
        for s in sorted(gb.students, key=lambda s: s.id):
            score, submitted, late, pending = graded.get(s.id, (None, None, 0.0, False))
            grades.append(StudentGrade(s.id, s.first_name or "", s.last_name or "", s.email or "",
                                       s.lms_user_id or "", score, max_score, submitted, late, pending))
    return grades


def cell_table(results: ClassResults) -> tuple[list[str], list[list[Cell]]]:
    """The per-cell table: header and rows (student, each graded cell's score, total, max, note)."""
    several = len({c.notebook for c in results.cells}) > 1
    names = [f"{c.notebook}/{c.grade_id}" if several else c.grade_id for c in results.cells]
    header = ["student", *names, "total", "max_score", "note"]
    rows: list[list[Cell]] = []
    for r in results.students:
        scores = {c.cell: c.score for c in r.cells}
        rows.append([r.student, *[scores.get(c) if r.graded else None for c in results.cells],
                     r.total if r.graded else None, results.max_score, r.note])
    return header, rows


def canvas_table(grades: list[StudentGrade], column: str) -> tuple[list[str], list[list[Cell]]]:
    max_score = grades[0].max_score if grades else 0.0
    rows: list[list[Cell]] = [[CANVAS_POINTS_POSSIBLE, None, None, None, None, max_score]]
    for g in grades:
        canvas_id = g.lms_user_id if g.lms_user_id.isdigit() else None
        rows.append([g.display_name, canvas_id, None, g.student, None, g.score])
    return [*CANVAS_FIXED, column], rows


def moodle_table(grades: list[StudentGrade], column: str) -> tuple[list[str], list[list[Cell]]]:
    return [*MOODLE_FIXED, column], [[g.student, g.email or None, g.score] for g in grades]


def export_grades(*, course_dir: Path | str, assignment: str, format: str, output: Path | str | None = None,
                  column: str | None = None) -> Path:
    """Write `assignment`'s grades in `format` (one of FORMATS); the file written.

    `output` defaults to ``COURSE_DIR/reports/<assignment>-<format>.csv``; `column` names the
    assignment's column in the LMS file (default: the assignment's name).
    """
    if format not in FORMATS:
        raise CourseError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    course_dir = Path(course_dir)
    path = Path(output) if output is not None else course_dir / "reports" / f"{assignment}-{format}.csv"
    if format == "csv":
        from .class_report import load_results

        table = cell_table(load_results(load_course(course_dir), assignment))
    else:
        grades = read_grades(course_dir, assignment)
        builder = canvas_table if format == "canvas" else moodle_table
        table = builder(grades, column or assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, *table)
    return path
