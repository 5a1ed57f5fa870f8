"""The instructor loop with the real nbgrader CLI, in a temporary copy of the course.

generate_assignment, then the demo class of submitted/ through scripts/grade_class.py
(nbgrader autograde, one student at a time), nbgrader generate_feedback and
scripts/class_report.py (nbgrader export + the class report) — twice, to show a
second run changes nothing.  Expected scores are written down here by hand.
"""

from __future__ import annotations

import csv
import html
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from conftest import ASSIGNMENT, MASTER, ROOT
from course_copy import generate_assignment, new_course
from coursekit_course import gradebook_scores

EXERCISES = ("zeros", "random", "he")
# Points of the (public, hidden) test cells of an exercise, by its total.
CELL_POINTS = {0: (0, 0), 1: (1, 0), 3: (1, 2)}
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
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
# The scripts of `make grade feedback report` run inside the course copy, with the helpers they import.
COURSE_FILES = ("nbgrader_config.py", "init_utils.py", "public_tests.py", "datasets", "source", "scripts")


def run(course: Path, env: dict[str, str], *args: str, **kwargs) -> str:
    done = subprocess.run(list(args), cwd=course, env=env, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def grade_feedback_report(course: Path, env: dict[str, str], **kwargs) -> tuple[str, str]:
    """The steps of `make grade feedback report` after the release; their printed output."""
    graded = run(course, env, sys.executable, "scripts/grade_class.py", **kwargs)
    run(course, env, "nbgrader", "generate_feedback", ASSIGNMENT, "--force", "--log-level=ERROR")
    return graded, run(course, env, sys.executable, "scripts/class_report.py")


@dataclass
class Snapshot:
    """Everything a run leaves behind that a second run must not change."""

    grade_output: str
    report_output: str
    csv_rows: list[dict[str, str]]
    cell_scores: dict[tuple[str, str], float]
    row_counts: dict[str, int]


def snapshot(course: Path, grade_output: str, report_output: str) -> Snapshot:
    with open(course / "reports" / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    db = sqlite3.connect(course / "gradebook.db")
    try:
        counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("student", "submitted_assignment", "submitted_notebook", "grade", "comment")}
    finally:
        db.close()
    return Snapshot(grade_output, report_output, rows, cell_scores(course), counts)


def cell_scores(course: Path) -> dict[tuple[str, str], float]:
    """{(student, test cell): points}; a cell nbgrader never scored counts 0."""
    return {key: score or 0.0 for key, score in gradebook_scores(course).items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory, course_env):
    """The demo class graded twice: (course folder, first run, second run)."""
    course = new_course(tmp_path_factory.mktemp("demo") / "course", COURSE_FILES)
    generate_assignment(course, "--force", "--log-level=ERROR", env=course_env)
    run(course, course_env, sys.executable, "scripts/make_demo_class.py")
    first = snapshot(course, *grade_feedback_report(course, course_env))
    second = snapshot(course, *grade_feedback_report(course, course_env))
    return course, first, second


def test_committed_demo_class_is_what_the_generator_builds_from_the_release(demo):
    course, _, _ = demo
    for student in EXPECTED:
        rebuilt = course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        committed = ROOT / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert rebuilt.read_bytes() == committed.read_bytes(), \
            f"{committed} is stale: run `make demo-class` after `make release` and commit submitted/"


@pytest.mark.parametrize("student", EXPECTED)
def test_every_demo_student_gets_the_expected_points_per_test_cell(demo, student):
    _, first, _ = demo
    for exercise, total in zip(EXERCISES, EXPECTED[student]):
        public, hidden = CELL_POINTS[total]
        assert first.cell_scores[(student, f"test_{exercise}_public")] == public, exercise
        assert first.cell_scores[(student, f"test_{exercise}_hidden")] == hidden, exercise


def test_exported_csv_has_every_students_total_out_of_nine(demo):
    _, first, _ = demo
    totals = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in first.csv_rows}
    assert totals == {student: (float(sum(points)), 9.0) for student, points in EXPECTED.items()}


def test_grading_prints_one_progress_line_per_student_with_the_score(demo):
    _, first, _ = demo
    lines = [line for line in first.grade_output.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in lines] == sorted(EXPECTED)
    assert all(line.startswith(f"[{i}/{len(EXPECTED)}] ") for i, line in enumerate(lines, 1))
    by_student = {line.split()[1]: line for line in lines}
    assert " 9/9 " in by_student["demo-all-correct"]
    assert "not a notebook" in by_student["demo-not-json"] and "0/9" in by_student["demo-not-json"]


def test_report_run_ends_with_the_grade_table_and_the_report_path(demo):
    course, first, _ = demo
    lines = first.report_output.strip().splitlines()
    assert lines[-1] == "Class report: reports/class_report.html"
    row = next(line for line in lines if line.startswith("demo-zeros-layers-dims-1 "))
    assert row.split()[1:5] == ["0/3", "3/3", "3/3", "6/9"]
    assert (course / "reports" / "class_report.html").is_file()


def test_class_report_groups_the_public_test_messages_by_exercise(demo):
    course, _, _ = demo
    report = html.unescape((course / "reports" / "class_report.html").read_text(encoding="utf-8"))
    zeros = report[report.index("<h3>zeros</h3>"):report.index("<h3>random</h3>")]
    assert "did you use layers_dims[1] for every layer?" in zeros
    assert "demo-zeros-layers-dims-1" in zeros
    he = report[report.index("<h3>he</h3>"):report.index("<h2>Every student</h2>")]
    assert "values look like Xavier scaling" in he
    random = report[report.index("<h3>random</h3>"):report.index("<h3>he</h3>")]
    assert "must set np.random.seed(3) itself" in random
    assert "1 passed the public test but failed the hidden one: demo-copied-public-answers." in random
    assert "the stub raise NotImplementedError() is still there" in random
    assert "the file is not a notebook" in report  # demo-not-json's row says why it has 0


def test_class_report_embeds_two_png_charts_next_to_it(demo):
    course, _, _ = demo
    report = (course / "reports" / "class_report.html").read_text(encoding="utf-8")
    for name in ("score_distribution.png", "pass_rate.png"):
        assert f"src='{name}'" in report
        assert (course / "reports" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def hidden_test_text() -> list[str]:
    """Lines of the master's hidden tests long enough to be unmistakable, and their numbers."""
    bodies = [body for cell in nbformat.read(MASTER, 4).cells for body in HIDDEN.findall(cell.source)]
    assert len(bodies) == 3
    lines = [line.strip() for body in bodies for line in body.splitlines() if len(line.strip()) >= 13]
    numbers = [n for body in bodies for n in re.findall(r"-?\d+\.\d{6,}", body)]
    return lines + numbers


def leaked_hidden_text(text: str) -> list[str]:
    return [piece for piece in hidden_test_text() if piece in text]


def test_hidden_test_detector_finds_the_tests_in_an_autograded_notebook(demo):
    # The autograded notebook holds the hidden tests again; the detector must see them there.
    course, _, _ = demo
    autograded = course / "autograded" / "demo-he-xavier" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert len(leaked_hidden_text(str(nbformat.read(autograded, 4)))) > 20


@pytest.mark.parametrize("student", sorted(set(EXPECTED) - NOT_GRADED))
def test_feedback_exists_and_never_shows_hidden_tests(demo, student):
    course, _, _ = demo
    page = course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = html.unescape(page.read_text(encoding="utf-8"))
    assert leaked_hidden_text(text) == []
    assert "HIDDEN TESTS" not in text


def test_feedback_says_which_hidden_test_failed_and_why(demo):
    course, _, _ = demo
    page = course / "feedback" / "demo-he-xavier" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = re.sub(r"<[^>]+>", " ", html.unescape(page.read_text(encoding="utf-8")))
    hidden = text[text.index("test_he_hidden"):]
    assert "Score: 0.0 / 2.0" in hidden[:300]
    assert "AssertionError: Not equal to tolerance rtol=1e-07" in hidden
    assert "This is a hidden test: its code and data are not shown." in hidden
    assert "values look like Xavier scaling" in text  # the public test's full message stays


def test_no_feedback_for_a_submission_nbgrader_could_not_read(demo):
    course, _, _ = demo
    assert not (course / "feedback" / "demo-not-json").exists()


def test_second_run_gives_the_same_grades_and_adds_no_rows(demo):
    _, first, second = demo
    assert second.cell_scores == first.cell_scores
    assert second.csv_rows == first.csv_rows
    assert second.row_counts == first.row_counts
    assert second.row_counts["submitted_assignment"] == len(EXPECTED)
    assert second.row_counts["grade"] == 6 * len(EXPECTED)
    table = [line for line in second.report_output.splitlines() if line.startswith("demo-")]
    assert table == [line for line in first.report_output.splitlines() if line.startswith("demo-")]
