"""The instructor loop on the demo class, in a temporary copy of the course, after each grader.

generate_assignment, then the demo class of submitted/ graded three times: by stock nbgrader
through scripts/grade_class.py (`make grade-nbgrader`, two students side by side), then twice by
`coursekit autograde --force` (`make grade`); after each, `coursekit feedback` and
`coursekit report` (`make feedback report`).  Both graders must give the scores written down
here by hand, the report must be built after either, and a second coursekit run must change
nothing.
"""

from __future__ import annotations

import csv
import html
import re
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from scripts.course import ASSIGNMENT, EXERCISES, MASTER, ROOT
from scripts.courses import COURSE_ID
from tests.helpers import cell_points, cell_scores, demo_course, leaked_hidden_text, run

EXPECTED = {  # student: (zeros, random, he)
    "demo-all-correct": (3, 3, 3),
    "demo-different-style": (3, 3, 3),
    "demo-zeros-layers-dims-1": (0, 3, 3),
    "demo-he-xavier": (3, 3, 0),
    "demo-random-no-seed": (3, 0, 3),
    "demo-copied-public-answers": (3, 1, 3),
    "demo-untouched": (0, 0, 0),
    "demo-not-json": (0, 0, 0),
}
NOT_GRADED = {"demo-not-json"}
# What `make grade` and `make grade-nbgrader` run, in the course folder.
GRADERS = {
    "nbgrader": [sys.executable, "-m", "scripts.grade_class", "--jobs", "2"],
    "coursekit": [sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--force"],
}
RUNS = ("nbgrader", "coursekit", "coursekit again")


def grade_feedback_report(course: Path, env: dict[str, str], grader: str) -> tuple[str, str]:
    """`make grade` (or grade-nbgrader), `make feedback`, `make report`; what grading and report print."""
    graded = run(course, env, *GRADERS[grader])
    run(course, env, sys.executable, "-m", "coursekit", "feedback", ASSIGNMENT)
    return graded, run(course, env, sys.executable, "-m", "coursekit", "report", ASSIGNMENT)


@dataclass
class Snapshot:
    """Everything a run leaves behind, read before the next run overwrites it."""

    grade_output: str
    report_output: str
    report_html: str
    csv_rows: list[dict[str, str]]
    cell_scores: dict[tuple[str, str], float]
    row_counts: dict[str, int]
    feedback: dict[str, str]  # student -> feedback page text (unescaped)


def snapshot(course: Path, grade_output: str, report_output: str) -> Snapshot:
    with open(course / "reports" / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    db = sqlite3.connect(course / "gradebook.db")
    try:
        counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("student", "submitted_assignment", "submitted_notebook", "grade", "comment")}
    finally:
        db.close()
    pages = {page.parent.parent.name: html.unescape(page.read_text(encoding="utf-8"))
             for page in (course / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")}
    report = html.unescape((course / "reports" / "class_report.html").read_text(encoding="utf-8"))
    return Snapshot(grade_output, report_output, report, rows, cell_scores(course, ASSIGNMENT, COURSE_ID), counts, pages)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, course_env) -> tuple[Path, dict[str, Snapshot]]:
    """The demo class graded by stock nbgrader, then twice by coursekit: (course, {run: snapshot})."""
    course = demo_course(tmp_path_factory.mktemp("demo") / "course", course_env, ROOT, ASSIGNMENT)
    run(course, course_env, sys.executable, "-m", "scripts.make_demo_class")
    runs = {}
    for name in RUNS:
        runs[name] = snapshot(course, *grade_feedback_report(course, course_env, name.split()[0]))
    return course, runs


def test_committed_demo_class_is_what_the_generator_builds_from_the_release(demo):
    course, _ = demo
    for student in EXPECTED:
        rebuilt = course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        committed = ROOT / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert rebuilt.read_bytes() == committed.read_bytes(), \
            f"{committed} is stale: run `make demo-class` after `make release` and commit submitted/"


@pytest.mark.parametrize("run_name", RUNS[:2])
@pytest.mark.parametrize("student", EXPECTED)
def test_every_demo_student_gets_the_expected_points_per_test_cell(demo, student, run_name):
    scores = demo[1][run_name].cell_scores
    expected = cell_points(EXPECTED[student], EXERCISES)
    assert {cell: scores[(student, cell)] for cell in expected} == expected


@pytest.mark.parametrize("run_name", RUNS[:2])
def test_exported_csv_has_every_students_total_out_of_nine(demo, run_name):
    rows = demo[1][run_name].csv_rows
    totals = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in rows}
    assert totals == {student: (float(sum(points)), 9.0) for student, points in EXPECTED.items()}


def test_stock_grading_prints_one_progress_line_per_student_with_the_score(demo):
    lines = [line for line in demo[1]["nbgrader"].grade_output.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in lines] == sorted(EXPECTED)
    assert all(line.startswith(f"[{i}/{len(EXPECTED)}] ") for i, line in enumerate(lines, 1))
    by_student = {line.split()[1]: line for line in lines}
    assert " 9/9 " in by_student["demo-all-correct"]
    assert "not a notebook" in by_student["demo-not-json"] and "0/9" in by_student["demo-not-json"]


@pytest.mark.parametrize("run_name", RUNS[:2])
def test_report_ends_with_the_grade_table_and_the_report_path(demo, run_name):
    course, runs = demo
    lines = runs[run_name].report_output.strip().splitlines()
    assert lines[-2:] == ["Grades:       reports/grades.csv", "Class report: reports/class_report.html"]
    row = next(line for line in lines if line.startswith("demo-zeros-layers-dims-1 "))
    assert row.split()[1:5] == ["0/3", "3/3", "3/3", "6/9"]
    assert "W2 has shape (2, 2), expected (1, 2)" in row  # the student's reason


@pytest.mark.parametrize("run_name", RUNS[:2])
def test_class_report_groups_the_public_test_messages_by_function(demo, run_name):
    report = demo[1][run_name].report_html
    zeros = report[report.index("<h3>initialize_parameters_zeros</h3>"):
                   report.index("<h3>initialize_parameters_random</h3>")]
    assert "did you use layers_dims[1] for every layer?" in zeros
    assert "demo-zeros-layers-dims-1" in zeros
    he = report[report.index("<h3>initialize_parameters_he</h3>"):report.index("<h2>Test cells</h2>")]
    assert "values look like Xavier scaling" in he
    random = report[report.index("<h3>initialize_parameters_random</h3>"):
                    report.index("<h3>initialize_parameters_he</h3>")]
    assert "must set np.random.seed(3) itself" in random
    assert "1 passed the public tests but failed a hidden one: demo-copied-public-answers." in random
    assert "NotImplementedError: the stub raise NotImplementedError() is still there" in random


@pytest.mark.parametrize("run_name", RUNS[:2])
def test_class_report_gives_each_student_who_lost_points_a_reason(demo, run_name):
    report = demo[1][run_name].report_html
    students = report[report.index("<h2>Every student</h2>"):]
    rows = dict(re.findall(r"<tr><td>(demo-[\w-]+)</td>.*?<td>([^<]*)</td></tr>", students))
    assert set(rows) == set(EXPECTED)
    for student, points in EXPECTED.items():
        assert bool(rows[student]) == (sum(points) < 9), student
    assert "is not JSON" in rows["demo-not-json"]
    assert "test_he_public: AssertionError: initialize_parameters_he([3, 2, 1])" in rows["demo-he-xavier"]


def test_class_report_says_which_grader_graded_the_cells(demo):
    _, runs = demo
    assert "48 by nbgrader" in runs["nbgrader"].report_html
    assert "48 by coursekit (replay)" in runs["coursekit"].report_html


@pytest.mark.parametrize("run_name", RUNS[:2])
def test_class_report_draws_its_charts_inline(demo, run_name):
    report = demo[1][run_name].report_html
    assert report.count("<svg ") == 2 and "<img" not in report  # one file: nothing to lose beside it


def test_hidden_test_detector_finds_the_tests_in_an_autograded_notebook(demo):
    # The autograded notebook holds the hidden tests again; the detector must see them there.
    course, _ = demo
    autograded = course / "autograded" / "demo-he-xavier" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert len(leaked_hidden_text(str(nbformat.read(autograded, 4)), MASTER)) > 20


@pytest.mark.parametrize("run_name", RUNS[:2])
@pytest.mark.parametrize("student", sorted(set(EXPECTED) - NOT_GRADED))
def test_feedback_exists_and_never_shows_hidden_tests(demo, student, run_name):
    text = demo[1][run_name].feedback[student]
    assert leaked_hidden_text(text, MASTER) == []
    assert "HIDDEN TESTS" not in text


@pytest.mark.parametrize("run_name", RUNS[:2])
def test_feedback_says_which_hidden_test_failed_and_why(demo, run_name):
    text = re.sub(r"<[^>]+>", " ", demo[1][run_name].feedback["demo-he-xavier"])
    hidden = text[text.index("test_he_hidden"):]
    assert "Score: 0.0 / 2.0" in hidden[:300]
    assert "AssertionError: Not equal to tolerance rtol=1e-07" in hidden
    assert "This is a hidden test: its code and data are not shown." in hidden
    assert "values look like Xavier scaling" in text  # the public test's full message stays


def test_no_feedback_for_a_submission_nbgrader_could_not_read(demo):
    assert "demo-not-json" not in demo[1]["nbgrader"].feedback


def test_both_graders_agree_and_a_second_run_adds_no_rows(demo):
    _, runs = demo
    first, second = runs["coursekit"], runs["coursekit again"]
    assert first.cell_scores == runs["nbgrader"].cell_scores
    assert second.cell_scores == first.cell_scores
    assert second.csv_rows == first.csv_rows
    assert second.row_counts == first.row_counts == runs["nbgrader"].row_counts
    assert second.row_counts["submitted_assignment"] == len(EXPECTED)
    assert second.row_counts["grade"] == 6 * len(EXPECTED)
    table = [line for line in second.report_output.splitlines() if line.startswith("demo-")]
    assert table == [line for line in first.report_output.splitlines() if line.startswith("demo-")]
