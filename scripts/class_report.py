"""Export the grades and write the class report, then print the grade table.

    python scripts/class_report.py [--no-export]

1. ``nbgrader export`` writes reports/grades.csv (one row per student, stock format);
2. reports/class_report.html, with reports/score_distribution.png and
   reports/pass_rate.png next to it, shows how the class did: the score
   distribution, the pass rate of every test cell, the most common messages of
   the public tests grouped by exercise, every student's scores and why a
   submission could not be graded.  Plain HTML and PNG files: open it from disk.

Scores come from the gradebook, failure messages from the error outputs of the
autograded notebooks, and reasons for ungraded submissions from
reports/autograde-status.json (written by scripts/grade_class.py).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
from nbgrader.api import Gradebook, MissingEntry  # noqa: E402
from traitlets.config.loader import PyFileConfigLoader  # noqa: E402

from coursekit.hide_hidden_tests import first_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "initialization"
REPORTS = ROOT / "reports"
STATUS_FILE = REPORTS / "autograde-status.json"
GRADES_CSV = REPORTS / "grades.csv"
REPORT_HTML = REPORTS / "class_report.html"
# Test cells are named test_<exercise>_<public|hidden> in the master notebook.
TEST_CELL = re.compile(r"^test_(?P<exercise>\w+)_(?P<kind>public|hidden)$")
TOP_MESSAGES = 5
# What an error without a message means in this notebook.
SILENT_ERRORS = {
    "NotImplementedError": "the stub raise NotImplementedError() is still there",
    "CellTimeoutError": "the cell ran past the time limit (an endless loop?)",
    "KeyboardInterrupt": "interrupted",
}

__all__ = ["ASSIGNMENT", "ROOT", "STATUS_FILE", "Gradebook", "gradebook_url"]


def gradebook_url() -> str:
    """The gradebook nbgrader uses here, as nbgrader_config.py computes it."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config().CourseDirectory.db_url


@dataclass
class TestResult:
    grade_id: str
    exercise: str
    kind: str  # "public" or "hidden"
    score: float
    max_score: float
    message: str  # "" when the cell ran without error

    @property
    def passed(self) -> bool:
        return self.score == self.max_score


@dataclass
class StudentResult:
    student: str
    graded: bool
    note: str  # why it was not graded, or which test cells were tampered with
    tests: list[TestResult] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(t.score for t in self.tests)

    def exercise_score(self, exercise: str) -> float:
        return sum(t.score for t in self.tests if t.exercise == exercise)


def test_cells(gb: Gradebook) -> list[tuple[str, str, str, float]]:
    """(grade_id, exercise, kind, points) of every test cell, in notebook order."""
    master = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in master.cells]
    cells = []
    for cell in gb.find_notebook(ASSIGNMENT, ASSIGNMENT).grade_cells:
        m = TEST_CELL.match(cell.name)
        if m is None:
            raise ValueError(f"grade cell {cell.name!r} is not named test_<exercise>_<public|hidden>")
        cells.append((cell.name, m["exercise"], m["kind"], cell.max_score))
    return sorted(cells, key=lambda c: order.index(c[0]) if c[0] in order else len(order))


def error_messages(notebook: Path) -> dict[str, str]:
    """grade_id -> "Error: first line of the message" for test cells that raised.

    The last error of a cell counts: after a timeout, nbgrader appends CellTimeoutError
    to the KeyboardInterrupt the kernel reported.
    """
    nb = nbformat.read(notebook, as_version=4)
    messages = {}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if grade_id and errors:
            error = errors[-1]
            message = first_line(error.get("evalue", ""), 300) or SILENT_ERRORS.get(error.ename, "")
            messages[grade_id] = f"{error.ename}: {message}" if message else error.ename
    return messages


def load_results() -> tuple[list[StudentResult], list[tuple[str, str, str, float]]]:
    """Every student in the gradebook with their per-test scores and messages."""
    status = json.loads(STATUS_FILE.read_text()) if STATUS_FILE.exists() else {}
    results = []
    with Gradebook(gradebook_url()) as gb:
        cells = test_cells(gb)
        for student in sorted(s.id for s in gb.students):
            notebook = ROOT / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
            graded = notebook.exists()
            if graded or student in status:
                note = status.get(student, {}).get("note", "")
            elif (ROOT / "submitted" / student / ASSIGNMENT).exists():
                note = "not graded, scored 0: no autograded notebook (run `make grade`)"
            else:
                note = "no submission in submitted/"
            messages = error_messages(notebook) if graded else {}
            result = StudentResult(student, graded, note)
            for grade_id, exercise, kind, points in cells:
                try:
                    score = gb.find_grade(grade_id, ASSIGNMENT, ASSIGNMENT, student).score
                except MissingEntry:
                    score = 0.0
                result.tests.append(TestResult(grade_id, exercise, kind, score, points,
                                               messages.get(grade_id, "")))
            results.append(result)
    return results, cells


def exercises(cells: list[tuple[str, str, str, float]]) -> list[str]:
    return list(dict.fromkeys(exercise for _, exercise, _, _ in cells))


def format_table(results: list[StudentResult], cells: list[tuple[str, str, str, float]]) -> str:
    """The grade table printed at the end of `make demo`: one row per student."""
    names = exercises(cells)
    points = {e: sum(p for _, ex, _, p in cells if ex == e) for e in names}
    total = sum(points.values())
    width = max([len("student")] + [len(r.student) for r in results])
    header = f"{'student':<{width}}" + "".join(f"{e:>9}" for e in names) + f"{'total':>9}  note"
    rows = [header, "-" * len(header)]
    for r in results:
        row = f"{r.student:<{width}}" + "".join(f"{r.exercise_score(e):>6g}/{points[e]:g}" for e in names)
        rows.append(f"{row}{r.total:>6g}/{total:g}  {r.note}".rstrip())
    return "\n".join(rows)


def plot_score_distribution(results: list[StudentResult], max_total: float, path: Path) -> None:
    counts = Counter(r.total for r in results)
    xs = range(int(max_total) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(xs, [counts.get(x, 0) for x in xs], color="#4c72b0")
    ax.set(xlabel=f"total score (out of {max_total:g})", ylabel="students",
           title=f"Score distribution ({len(results)} students)", xticks=list(xs))
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pass_rate(results: list[StudentResult], cells: list[tuple[str, str, str, float]], path: Path) -> None:
    names = exercises(cells)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for offset, kind, colour in ((-0.2, "public", "#55a868"), (0.2, "hidden", "#c44e52")):
        rates = [100 * sum(t.passed for r in results for t in r.tests if t.exercise == e and t.kind == kind)
                 / max(len(results), 1) for e in names]
        ax.bar([i + offset for i in range(len(names))], rates, width=0.4, label=f"{kind} test", color=colour)
    ax.set(xticks=range(len(names)), xticklabels=names, ylabel="students passing (%)", ylim=(0, 125),
           yticks=range(0, 101, 20), title="Pass rate of each test")
    ax.legend(loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def common_messages(results: list[StudentResult], exercise: str) -> list[tuple[str, list[str]]]:
    """The public test's failure messages for one exercise, most frequent first, with who got them."""
    who: dict[str, list[str]] = defaultdict(list)
    for r in results:
        for t in r.tests:
            if t.exercise == exercise and t.kind == "public" and t.message:
                who[t.message].append(r.student)
    return sorted(who.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_MESSAGES]


def write_report(results: list[StudentResult], cells: list[tuple[str, str, str, float]]) -> Path:
    """Write class_report.html and its two PNGs into reports/; return the HTML path."""
    REPORTS.mkdir(exist_ok=True)
    max_total = sum(p for *_, p in cells)
    plot_score_distribution(results, max_total, REPORTS / "score_distribution.png")
    plot_pass_rate(results, cells, REPORTS / "pass_rate.png")
    esc = html.escape
    names = exercises(cells)
    graded = [r for r in results if r.graded]
    mean = sum(r.total for r in results) / max(len(results), 1)

    parts = [f"<h1>Class report: {esc(ASSIGNMENT)}</h1>",
             f"<p>{len(results)} students, {len(graded)} graded by nbgrader; mean score "
             f"{mean:.2f} / {max_total:g}. Grades: <a href='{GRADES_CSV.name}'>{GRADES_CSV.name}</a>.</p>",
             "<img src='score_distribution.png' alt='Histogram of total scores'>",
             "<img src='pass_rate.png' alt='Share of students passing each public and hidden test'>",
             "<h2>Most common public-test messages</h2>"]
    for exercise in names:
        parts.append(f"<h3>{esc(exercise)}</h3>")
        messages = common_messages(results, exercise)
        hidden_only = [r.student for r in results if any(
            t.exercise == exercise and t.kind == "hidden" and not t.passed for t in r.tests) and all(
            t.passed for t in r.tests if t.exercise == exercise and t.kind == "public")]
        if not messages:
            parts.append("<p>No failures of the public test.</p>")
        else:
            parts.append("<table><tr><th>students</th><th>message</th><th>who</th></tr>" + "".join(
                f"<tr><td>{len(s)}</td><td><code>{esc(m)}</code></td><td>{esc(', '.join(s))}</td></tr>"
                for m, s in messages) + "</table>")
        if hidden_only:
            parts.append(f"<p>{len(hidden_only)} passed the public test but failed the hidden one: "
                         f"{esc(', '.join(hidden_only))}.</p>")

    parts.append("<h2>Every student</h2><table><tr><th>student</th>"
                 + "".join(f"<th>{esc(e)}</th>" for e in names) + "<th>total</th><th>note</th></tr>")
    for r in results:
        parts.append(f"<tr><td>{esc(r.student)}</td>"
                     + "".join(f"<td>{r.exercise_score(e):g}</td>" for e in names)
                     + f"<td>{r.total:g}</td><td>{esc(r.note)}</td></tr>")
    parts.append("</table>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}")
    REPORT_HTML.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Class report: {esc(ASSIGNMENT)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n", encoding="utf-8")
    return REPORT_HTML


def export_grades() -> None:
    """Stock `nbgrader export` to reports/grades.csv."""
    REPORTS.mkdir(exist_ok=True)
    subprocess.run(["nbgrader", "export", f"--to={GRADES_CSV}", "--log-level=ERROR"], cwd=ROOT, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-export", action="store_true", help="do not rewrite reports/grades.csv")
    args = parser.parse_args()
    if not args.no_export:
        export_grades()
    results, cells = load_results()
    if not results:
        print("The gradebook has no students yet: run `make grade` first.", file=sys.stderr)
        return 1
    report = write_report(results, cells)
    print(format_table(results, cells))
    print(f"\nGrades:       {GRADES_CSV.relative_to(ROOT)}")
    print(f"Class report: {report.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
