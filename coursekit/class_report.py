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

It writes ``class_report.html`` (one self-contained page: the charts are inline SVG, so no
plotting library is needed) and ``grades.csv`` (the columns of nbgrader's CSV export, written
by `coursekit.csvfile`, so no cell is read as a formula) into the output folder, and returns the
grade table printed at the end of ``make demo``.

Student text (ids, reasons, error messages) reaches the table, the page and the CSV only through
`coursekit.printable` (control and bidirectional characters escaped) and, in the page,
``html.escape``.  A submission whose files cannot be read (any bytes at all) gets a note saying
so; it never stops the report for the rest of the class.
"""

from __future__ import annotations

import html
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearHiddenTests

from .csvfile import write_csv
from .extract import PlanError, notebooks_of, plan_assignment
from .gradebook import StoredResult, read_results
from .printable import printable
from .read import Course, CourseError, Unreadable, course_config, load_course, parse_notebook, read_bytes

# What starts a hidden-test region: nbgrader's default (ClearHiddenTests.begin_test_delimeter).
HIDDEN_MARK = ClearHiddenTests.class_traits()["begin_test_delimeter"].default_value
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


def _grade_id(cell: dict) -> str | None:
    meta = cell.get("metadata")
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def error_messages(notebook: Path) -> dict[str, str]:
    """grade_id -> "Error: first line of the message" for cells of an autograded notebook that raised.

    The last error of a cell counts: after a timeout, nbgrader appends CellTimeoutError to the
    KeyboardInterrupt the kernel reported.
    """
    messages = {}
    for cell in _notebook(notebook).cells:
        grade_id = _grade_id(cell)
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


def first_line(text: str, limit: int = 300) -> str:
    """The first non-blank line of ``text``, cut to ``limit`` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _test_sources(path: Path) -> dict[str, str]:
    return {grade_id: c.get("source", "") for c in _notebook(path).cells
            if (grade_id := _grade_id(c)) and c["metadata"]["nbgrader"].get("grade")}


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


def esc(text: str) -> str:
    """Text for the page: HTML-escaped, control and bidirectional characters written as escapes."""
    return html.escape(printable(text, keep="\n\t"))


def svg_bars(title: str, labels: list[str], values: list[float], top: float, unit: str = "",
             colours: list[str] | None = None) -> str:
    """A small bar chart as inline SVG (no plotting library needed)."""
    longest = max((len(label) for label in labels), default=0)
    # Labels are written at a slant, ending under their bar: long ones need room to the left and below.
    bar, gap, height = 34, 10, 160
    left, bottom = 40 + 5 * max(longest - 4, 0), 30 + 5 * longest
    width = left + len(values) * (bar + gap) + gap
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + bottom + 30}' "
             f"role='img' aria-label='{esc(title)}'>",
             f"<text x='{left}' y='16' font-size='14'>{esc(title)}</text>",
             f"<line x1='{left}' y1='{height + 30}' x2='{width}' y2='{height + 30}' stroke='#333'/>"]
    for i, (label, value) in enumerate(zip(labels, values)):
        x = left + gap + i * (bar + gap)
        h = 0 if top <= 0 else height * value / top
        colour = colours[i] if colours else "#4c72b0"
        parts.append(f"<rect x='{x}' y='{height + 30 - h:.1f}' width='{bar}' height='{h:.1f}' fill='{colour}'>"
                     f"<title>{esc(label)}: {value:g}{unit}</title></rect>")
        parts.append(f"<text x='{x + bar / 2}' y='{height + 26 - h:.1f}' font-size='11' "
                     f"text-anchor='middle'>{value:g}{unit}</text>")
        parts.append(f"<text x='{x + bar / 2}' y='{height + 44}' font-size='11' text-anchor='end' "
                     f"transform='rotate(-35 {x + bar / 2} {height + 44})'>{esc(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def common_messages(results: ClassResults, exercise: str) -> list[tuple[str, list[str]]]:
    """The public tests' failure messages for one exercise, most frequent first, with who got them."""
    who: dict[str, list[str]] = defaultdict(list)
    for r in results.students:
        for c in r.cells:
            if c.cell.exercise == exercise and not c.cell.hidden and c.message:
                who[c.message].append(r.student)
    return sorted(who.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_MESSAGES]


def render_html(results: ClassResults, csv_name: str) -> str:
    students = results.students
    count = max(len(students), 1)
    totals = Counter(round(r.total) for r in students)
    bins = list(range(int(results.max_score) + 1))
    mean = sum(r.total for r in students) / count
    modes = Counter(c.mode for r in students for c in r.cells)
    graded_by = ", ".join(f"{n} by {'nbgrader' if m == NBGRADER else f'coursekit ({m})'}"
                          for m, n in sorted(modes.items()))
    rates = [100 * sum(c.passed for r in students for c in r.cells if c.cell == cell) / count
             for cell in results.cells]
    parts = [f"<h1>Class report: {esc(results.assignment)}</h1>",
             f"<p>{len(students)} students, {sum(r.graded for r in students)} with a graded submission; "
             f"mean score {mean:.2f} / {results.max_score:g}. Test cells graded: {esc(graded_by) or 'none'}. "
             f"Grades: <a href='{esc(csv_name)}'>{esc(csv_name)}</a>.</p>"]
    parts += [f"<p class='note'>{esc(n)}</p>" for n in results.notes]
    parts.append(svg_bars(f"Score distribution ({len(students)} students)", [str(b) for b in bins],
                          [float(totals.get(b, 0)) for b in bins], max(totals.values(), default=1)))
    parts.append(svg_bars("Students passing each test cell", [c.grade_id for c in results.cells],
                          [round(r) for r in rates], 100, "%",
                          ["#c44e52" if c.hidden else "#55a868" for c in results.cells]))
    parts.append("<p>Green: public tests (students see and run them); red: hidden tests.</p>")

    parts.append("<h2>Most common public-test messages</h2>")
    for exercise in results.exercises:
        parts.append(f"<h3>{esc(exercise)}</h3>")
        messages = common_messages(results, exercise)
        hidden_only = [r.student for r in students
                       if any(c.cell.exercise == exercise and c.cell.hidden and not c.passed for c in r.cells)
                       and all(c.passed for c in r.cells if c.cell.exercise == exercise and not c.cell.hidden)]
        if not messages:
            parts.append("<p>No failures of the public tests.</p>")
        else:
            parts.append("<table><tr><th>students</th><th>message</th><th>who</th></tr>" + "".join(
                f"<tr><td>{len(s)}</td><td><code>{esc(m)}</code></td><td>{esc(', '.join(s))}</td></tr>"
                for m, s in messages) + "</table>")
        if hidden_only and any(c.hidden for c in results.cells if c.exercise == exercise):
            parts.append(f"<p>{len(hidden_only)} passed the public tests but failed a hidden one: "
                         f"{esc(', '.join(hidden_only))}.</p>")

    parts.append("<h2>Test cells</h2><table><tr><th>cell</th><th>exercise</th><th>kind</th><th>points</th>"
                 "<th>students passing</th><th>graded by</th></tr>")
    for cell, rate in zip(results.cells, rates):
        by = Counter(c.mode for r in students for c in r.cells if c.cell == cell)
        parts.append(f"<tr><td>{esc(cell.notebook)}/{esc(cell.grade_id)}</td><td>{esc(cell.exercise)}</td>"
                     f"<td>{'hidden' if cell.hidden else 'public'}</td><td>{cell.max_score:g}</td>"
                     f"<td>{rate:.0f}%</td><td>{esc(', '.join(f'{m}: {n}' for m, n in sorted(by.items())))}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Every student</h2><table><tr><th>student</th>"
                 + "".join(f"<th>{esc(e)}</th>" for e in results.exercises) + "<th>total</th><th>note</th></tr>")
    for r in students:
        parts.append(f"<tr><td>{esc(r.student)}</td>"
                     + "".join(f"<td>{r.exercise_score(e):g}</td>" for e in results.exercises)
                     + f"<td>{r.total:g}</td><td>{esc(r.note)}</td></tr>")
    parts.append("</table>")
    style = ("body{font-family:sans-serif;max-width:64em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}"
             "svg{margin:1em 1em 0 0;vertical-align:top}.note{color:#8a4b00}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Class report: {esc(results.assignment)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


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
