"""The class report: how a class did on one assignment, after either grader.

    coursekit report ASSIGNMENT [--course-dir DIR] [--out DIR]

It reads, and never changes:

* the scores, from the course's nbgrader gradebook -- what ``coursekit autograde`` or stock
  ``nbgrader autograde`` wrote, and any manual grades;
* which test cells belong to which graded function, from coursekit's plan of the assignment
  (a test cell belongs to the graded functions it reads, `coursekit.extract`), and whether a
  test is hidden, from the master's source in the gradebook (a ``BEGIN HIDDEN TESTS`` region);
* why a student lost points: coursekit's stored reason and per-cell messages
  (`coursekit.gradebook.read_results`) while they still match the gradebook.  After stock
  nbgrader there are none, so the report falls back to what is on disk: the error outputs of
  the autograded notebook, and for a submission nbgrader could not grade, what coursekit's
  reader says about the submitted file, or which test cells differ from the release.

It writes ``class_report.html`` (one self-contained page from the Jinja2 template
``templates/class_report.html.j2``: the charts are inline SVG, so no plotting library is needed) and ``grades.csv`` (the columns of nbgrader's CSV export, written
by `coursekit.csvfile`, so no cell is read as a formula) into the output folder, and returns the
grade table printed at the end of ``make demo``.

Student text (ids, reasons, error messages) reaches the table, the page and the CSV only through
`coursekit.printable` (control and bidirectional characters escaped) and, in the page, the
template's autoescape.  A submission whose files cannot be read (any bytes at all) gets a note saying
so; it never stops the report for the rest of the class.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import nbformat
from nbgrader.api import Gradebook, MissingEntry

from .csvfile import write_csv
from .extract import PlanError, grade_id_of, notebooks_of, plan_assignment
from .gradebook import StoredResult, read_results
from .hidden import HIDDEN_MARK, first_line
from .printable import printable
from .read import Course, CourseError, Unreadable, course_config, load_course, parse_notebook, read_bytes

TOP_MESSAGES = 5
TABLE_NOTE_CHARS = 120
# What an error without a message means in an nbgrader notebook.
SILENT_ERRORS = {
    "NotImplementedError": "the stub raise NotImplementedError() is still there",
    "CellTimeoutError": "the cell ran past the time limit (an endless loop?)",
    "KeyboardInterrupt": "interrupted",
}
NBGRADER = "nbgrader"  # how a cell was graded when coursekit stored nothing about it


@dataclass(frozen=True)
class GradeCell:
    """One graded cell of the assignment, as the report groups it."""

    notebook: str
    grade_id: str
    exercise: str  # the graded function(s) a test cell reads; a manually graded cell's own id
    hidden: bool
    max_score: float


@dataclass(frozen=True)
class CellResult:
    cell: GradeCell
    score: float
    message: str  # "" when the cell lost no points
    mode: str  # "replay" or "sandbox" (coursekit), or "nbgrader"

    @property
    def passed(self) -> bool:
        return self.score >= self.cell.max_score


@dataclass
class StudentResult:
    student: str
    graded: bool  # every notebook has a graded submission
    notes: list[str] = field(default_factory=list)
    cells: list[CellResult] = field(default_factory=list)

    @property
    def note(self) -> str:
        return "; ".join(n for n in self.notes if n)

    @property
    def total(self) -> float:
        return sum(c.score for c in self.cells)

    def exercise_score(self, exercise: str) -> float:
        return sum(c.score for c in self.cells if c.cell.exercise == exercise)


@dataclass
class ClassResults:
    assignment: str
    cells: list[GradeCell]
    students: list[StudentResult]
    notes: list[str]  # about the report itself, e.g. an assignment coursekit cannot plan

    @property
    def exercises(self) -> list[str]:
        return list(dict.fromkeys(c.exercise for c in self.cells))

    def points(self, exercise: str) -> float:
        return sum(c.max_score for c in self.cells if c.exercise == exercise)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)


# ----------------------------------------------------------------------------- reading


def _grade_cells(course: Course, gb: Gradebook, assignment: str, notebook: str) -> tuple[list[GradeCell], str]:
    """The notebook's graded cells in the master's order, grouped by coursekit's plan."""
    stored = gb.find_notebook(notebook, assignment)
    points = {c.name: float(c.max_score) for c in stored.grade_cells}
    sources = {c.name: c.source for c in stored.source_cells}
    note = ""
    try:
        plan = plan_assignment(course, assignment, notebook)
        order = [c.grade_id for c in plan.cells if c.grade_id]
        owners: dict[str, list[str]] = defaultdict(list)
        for function, tests in plan.tests_of.items():
            for grade_id in tests:
                owners[grade_id].append(function)
    except PlanError as error:
        order, owners = [], {}
        note = f"{notebook}: test cells are listed one by one, not by function ({error})"
    ranked = sorted(points, key=lambda g: (order.index(g) if g in order else len(order), g))
    cells = [GradeCell(notebook, g, " + ".join(owners[g]) if owners.get(g) else g,
                       HIDDEN_MARK in sources.get(g, ""), points[g]) for g in ranked]
    return cells, note


def _notebook(path: Path) -> nbformat.NotebookNode:
    """A notebook on disk read as the grader reads submissions (`read.parse_notebook`: it never
    raises on odd bytes); ValueError with the reason when it is not one."""
    data = read_bytes(path)
    nb = parse_notebook(data, path.name) if isinstance(data, bytes) else data
    if isinstance(nb, Unreadable):
        raise ValueError(nb.reason)
    return nb


def error_messages(notebook: Path) -> dict[str, str]:
    """grade_id -> "Error: first line of the message" for cells of an autograded notebook that raised.

    The last error of a cell counts: after a timeout, nbgrader appends CellTimeoutError to the
    KeyboardInterrupt the kernel reported.
    """
    messages = {}
    for cell in _notebook(notebook).cells:
        grade_id = grade_id_of(cell)
        outputs = cell.get("outputs")
        errors = [o for o in outputs if isinstance(o, dict) and o.get("output_type") == "error"] \
            if isinstance(outputs, list) else []
        if grade_id and errors:
            error = errors[-1]
            messages[grade_id] = readable(f"{error.get('ename', '')}: {error.get('evalue', '')}")
    return messages


def readable(message: str) -> str:
    """A failure message as the report shows it: the error's name and the first line of its message,
    and what a bare error name means ("NotImplementedError" -> "NotImplementedError: the stub raise
    NotImplementedError() is still there")."""
    name, _, rest = message.strip().partition(":")
    if not name.replace(".", "").replace("_", "").isalnum():  # not "SomeError: ..."
        return first_line(message)
    detail = first_line(rest) or SILENT_ERRORS.get(name, "")
    return f"{name}: {detail}" if detail else name


def _test_sources(path: Path) -> dict[str, str]:
    return {grade_id: c.get("source", "") for c in _notebook(path).cells
            if (grade_id := grade_id_of(c)) and c["metadata"]["nbgrader"].get("grade")}


def tampering_note(release: Path, submitted: Path, restores_deleted: bool) -> str:
    """Which test cells the student deleted or edited, compared with the release."""
    released, handed_in = _test_sources(release), _test_sources(submitted)
    deleted = [g for g in released if g not in handed_in]
    edited = [g for g in released if g in handed_in and handed_in[g] != released[g]]
    notes = []
    if deleted:
        fate = "graded with the original code" if restores_deleted else "scored 0"
        notes.append(f"test cells deleted, {fate}: {', '.join(deleted)}")
    if edited:
        notes.append(f"test cells edited, graded with the original code: {', '.join(edited)}")
    return "; ".join(notes)


def restores_deleted_cells(course: Course) -> bool:
    """Whether nbgrader puts deleted grade cells back (``OverwriteCells.add_missing_cells``)."""
    return bool(course_config(course.root).get("OverwriteCells", {}).get("add_missing_cells", False))


def _why_not_graded(path: Path) -> str:
    """What is wrong with a submitted notebook nbgrader wrote no autograded notebook for."""
    data = read_bytes(path)
    parsed = parse_notebook(data, path.name) if isinstance(data, bytes) else data
    if isinstance(parsed, Unreadable):
        return f"not graded, scored 0: {parsed.reason}"
    return ("not graded, scored 0: nbgrader wrote no autograded notebook (its kernel may have died: "
            "os._exit, a crash or the out-of-memory killer); see nbgrader's log and grade it by hand")


def _fallback(course: Course, assignment: str, student: str, notebook: str,
              restores_deleted: bool) -> tuple[str, dict[str, str]]:
    """(note, messages) from the files nbgrader leaves, when coursekit stored nothing current."""
    graded = course.autograded_dir(student, assignment) / f"{notebook}.ipynb"
    submitted = course.submitted_dir(student, assignment) / f"{notebook}.ipynb"
    release = course.release_dir(assignment) / f"{notebook}.ipynb"
    if not graded.is_file():
        if submitted.exists():
            return _why_not_graded(submitted), {}
        return "no submission", {}
    note = ""
    try:
        if submitted.is_file() and release.is_file():
            note = tampering_note(release, submitted, restores_deleted)
    except ValueError:  # the submitted file is no notebook: the autograded one says the rest
        pass
    try:
        return note, error_messages(graded)
    except ValueError as error:
        return "; ".join(filter(None, [note, f"the autograded notebook cannot be read: {error}"])), {}


def load_results(course: Course, assignment: str) -> ClassResults:
    """Every student in the gradebook with their scores, messages and notes for `assignment`."""
    notebooks = notebooks_of(course, assignment)
    restores_deleted = restores_deleted_cells(course)
    stored: dict[tuple[str, str], StoredResult] = {
        (r.student, r.notebook): r for r in read_results(course.db_url, assignment) if r.current}
    with Gradebook(course.db_url, course.course_id) as gb:
        cells: list[GradeCell] = []
        notes: list[str] = []
        try:
            for notebook in notebooks:
                found, note = _grade_cells(course, gb, assignment, notebook)
                cells += found
                notes += [note] if note else []
        except MissingEntry:
            raise CourseError(f"the gradebook has no assignment {assignment!r}: run "
                              f"`nbgrader generate_assignment {assignment}` and grade it first") from None
        scores: dict[tuple[str, str, str], float] = {}
        submitted: set[tuple[str, str]] = set()
        for submission in gb.find_assignment(assignment).submissions:
            for nb in submission.notebooks:
                submitted.add((submission.student.id, nb.name))
                for grade in nb.grades:
                    scores[(submission.student.id, nb.name, grade.name)] = grade.score
        students = sorted(s.id for s in gb.students)

    results = []
    for student in students:
        result = StudentResult(student, graded=all((student, nb) in submitted for nb in notebooks))
        for notebook in notebooks:
            if (student, notebook) in stored:
                record = stored[(student, notebook)]
                note = record.reason
                messages = {c.grade_id: readable(c.message) for c in record.cells if c.message}
                modes = {c.grade_id: c.mode for c in record.cells}
            else:
                note, messages = _fallback(course, assignment, student, notebook, restores_deleted)
                modes = {}
            lost = []
            for cell in (c for c in cells if c.notebook == notebook):
                score = scores.get((student, notebook, cell.grade_id)) or 0.0
                message = messages.get(cell.grade_id, "") if score < cell.max_score else ""
                result.cells.append(CellResult(cell, score, message, modes.get(cell.grade_id, NBGRADER)))
                lost += [f"{cell.grade_id}: {message}"] if message else []
            if not modes:  # nothing stored: the reason is what the files say about each point lost
                note = "; ".join(filter(None, [note, *lost]))
            prefix = f"{notebook}: " if len(notebooks) > 1 and note else ""
            result.notes.append(prefix + note)
        results.append(result)
    return ClassResults(assignment, cells, results, notes)


# ----------------------------------------------------------------------------- writing


def short_names(exercises: list[str]) -> dict[str, str]:
    """Column headings: the exercises without the prefix they all share
    ("initialize_parameters_zeros", "initialize_parameters_he" -> "zeros", "he")."""
    if len(exercises) < 2:
        return {e: e for e in exercises}
    prefix = os.path.commonprefix(exercises)
    prefix = prefix[: prefix.rfind("_") + 1]
    return {e: e[len(prefix):] or e for e in exercises}


def format_table(results: ClassResults) -> str:
    """One row per student: points per exercise, total, and the note (cut to one line)."""
    names = short_names(results.exercises)
    width = max([len("student")] + [len(printable(r.student)) for r in results.students])
    columns = {e: max(len(names[e]), 7) + 2 for e in results.exercises}
    header = (f"{'student':<{width}}" + "".join(f"{names[e]:>{columns[e]}}" for e in results.exercises)
              + f"{'total':>9}  note")
    rows = [header, "-" * len(header)]
    for r in results.students:
        # Escaped before it is cut: an escape sequence cut in half would still act.
        note = printable(r.note)
        note = note if len(note) <= TABLE_NOTE_CHARS else note[: TABLE_NOTE_CHARS - 1] + "…"
        cells = "".join(f"{f'{r.exercise_score(e):g}/{results.points(e):g}':>{columns[e]}}"
                        for e in results.exercises)
        rows.append(f"{printable(r.student):<{width}}{cells}{f'{r.total:g}/{results.max_score:g}':>9}  "
                    f"{note}".rstrip())
    return "\n".join(rows)


def common_messages(results: ClassResults, exercise: str) -> list[tuple[str, list[str]]]:
    """The public tests' failure messages for one exercise, most frequent first, with who got them."""
    who: dict[str, list[str]] = defaultdict(list)
    for r in results.students:
        for c in r.cells:
            if c.cell.exercise == exercise and not c.cell.hidden and c.message:
                who[c.message].append(r.student)
    return sorted(who.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_MESSAGES]


_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("coursekit", "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, trim_blocks=False)
# `p`: student text with control and bidirectional characters written as visible escapes (the
# template then HTML-escapes it); `g`: a number as Python's :g writes it.
_TEMPLATES.filters["p"] = lambda text: printable(str(text), keep="\n\t")
_TEMPLATES.filters["g"] = lambda number: f"{number:g}"


def render_html(results: ClassResults, csv_name: str) -> str:
    """The class report page, from templates/class_report.html.j2 (autoescaped)."""
    students = results.students
    count = max(len(students), 1)
    totals = Counter(round(r.total) for r in students)
    bins = list(range(int(results.max_score) + 1))
    modes = Counter(c.mode for r in students for c in r.cells)
    rates = [100 * sum(c.passed for r in students for c in r.cells if c.cell == cell) / count
             for cell in results.cells]
    exercises = []
    for exercise in results.exercises:
        hidden_only = [r.student for r in students
                       if any(c.cell.exercise == exercise and c.cell.hidden and not c.passed for c in r.cells)
                       and all(c.passed for c in r.cells if c.cell.exercise == exercise and not c.cell.hidden)]
        has_hidden = any(c.hidden for c in results.cells if c.exercise == exercise)
        exercises.append({"name": exercise, "messages": common_messages(results, exercise),
                          "hidden_only": hidden_only if has_hidden else []})
    cells = []
    for cell, rate in zip(results.cells, rates):
        by = Counter(c.mode for r in students for c in r.cells if c.cell == cell)
        cells.append({"name": f"{cell.notebook}/{cell.grade_id}", "exercise": cell.exercise,
                      "kind": "hidden" if cell.hidden else "public", "points": cell.max_score, "rate": rate,
                      "graded_by": ", ".join(f"{m}: {n}" for m, n in sorted(by.items()))})
    return _TEMPLATES.get_template("class_report.html.j2").render(
        assignment=results.assignment, students=students, graded=sum(r.graded for r in students),
        mean=sum(r.total for r in students) / count, max_score=results.max_score,
        graded_by=", ".join(f"{n} by {'nbgrader' if m == NBGRADER else f'coursekit ({m})'}"
                            for m, n in sorted(modes.items())),
        csv_name=csv_name, notes=results.notes,
        score_labels=[str(b) for b in bins], score_counts=[float(totals.get(b, 0)) for b in bins],
        score_top=max(totals.values(), default=1),
        cell_labels=[c.grade_id for c in results.cells], pass_rates=[round(r) for r in rates],
        cell_colours=["#c44e52" if c.hidden else "#55a868" for c in results.cells],
        exercises=exercises, cells=cells, exercise_names=results.exercises,
        rows=[{"student": r.student, "scores": [r.exercise_score(e) for e in results.exercises], "total": r.total,
               "note": r.note} for r in students],
    ) + "\n"


GRADES_COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                  "raw_score", "late_submission_penalty", "score", "max_score")  # nbgrader's CsvExportPlugin


def write_grades_csv(course: Course, assignment: str, path: Path) -> None:
    """`path`: one row per student of the gradebook, with the columns and values of nbgrader's
    ``CsvExportPlugin`` (a student without a submission scores 0), through `csvfile.write_csv`."""
    rows = []
    with Gradebook(course.db_url, course.course_id) as gb:
        stored = gb.find_assignment(assignment)
        for student in gb.students:
            try:
                submission = gb.find_submission(assignment, student.id)
            except MissingEntry:
                timestamp, raw, penalty = None, 0.0, 0.0
            else:
                timestamp, raw, penalty = submission.timestamp, submission.score, submission.late_submission_penalty
            rows.append([assignment, stored.duedate and str(stored.duedate), timestamp and str(timestamp),
                         student.id, student.last_name, student.first_name, student.email, raw, penalty,
                         max(0.0, raw - penalty), stored.max_score])
    write_csv(path, GRADES_COLUMNS, rows)


@dataclass(frozen=True)
class Report:
    table: str
    html: Path
    csv: Path


def write_report(course_dir: Path | str, assignment: str, out: Path | str | None = None) -> Report:
    """Build the class report of `assignment` from the course's gradebook; see the module docstring."""
    course = load_course(Path(course_dir))
    out = Path(out) if out is not None else course.root / "reports"
    results = load_results(course, assignment)
    if not any(r.graded for r in results.students):
        raise CourseError(f"nothing of {assignment!r} is graded yet: run "
                          f"`coursekit autograde {assignment}` (or `nbgrader autograde`) first")
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "grades.csv"
    write_grades_csv(course, assignment, csv_path)
    page = out / "class_report.html"
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(render_html(results, csv_path.name), encoding="utf-8")
    os.replace(tmp, page)  # a reader never sees half a report
    return Report(format_table(results), page, csv_path)
