"""A hub's gradebook on a real PostgreSQL server, under the load a hub puts on it.

Debian's server runs in a temporary folder (scripts/pg_server.py).  A generated class of CLASS
submissions (the fixture course's class, every variant with its hand-worked score) is graded by the real
`coursekit autograde` CLI with COURSEKIT_GRADEBOOK pointing at the server, as on a hub:

- two graders started at once, while `nbgrader export` reads the gradebook, lose no row and leave
  each grade right (and the export taken mid-batch shows only whole submissions);
- a grader killed with SIGKILL mid-batch and started again completes the class (the last students'
  notebooks sleep first, so the kill lands mid-batch however fast the others are graded).

The assignment is put in a template database once, by the real `nbgrader generate_assignment`; each
test grades into its own copy of it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from scripts.pg_server import PostgresServer
from tests import helpers
from tests.helpers import ASSIGNMENT

pytestmark = pytest.mark.hub

CLASS = 40
TEMPLATE_DB = "course_template"


@pytest.fixture(scope="module")
def class_template(generated_class, postgres):
    """A course holding CLASS submissions, and a template database holding its assignment."""
    _, template, manifest = generated_class("pg", CLASS)
    helpers.generate_assignment(template, "--force", "--log-level=WARN",
                                env=gradebook_env(postgres.create_database(TEMPLATE_DB)))
    return template, manifest


def gradebook_env(url: str) -> dict[str, str]:
    """nbgrader's environment with the gradebook on the server (nbgrader_config.py reads the URL)."""
    return {**helpers.nbgrader_env(), "COURSEKIT_GRADEBOOK": url}


def fresh_course(class_template, postgres, tmp_path: Path, name: str) -> tuple[Path, str, dict]:
    template, manifest = class_template
    return helpers.copy_course(template, tmp_path / "course"), postgres.create_database(name, TEMPLATE_DB), manifest


def start_grader(course: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json"],
                            cwd=course, env=gradebook_env(url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def export(course: Path, url: str, name: str) -> dict[str, dict[str, str]]:
    """Run the real `nbgrader export` into `name`; its rows by student."""
    done = subprocess.run([sys.executable, "-m", "nbgrader", "export", f"--to={name}"], cwd=course,
                          env=gradebook_env(url), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with (course / name).open(newline="") as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


def row_counts(postgres: PostgresServer, database: str) -> dict[str, int]:
    connection = psycopg2.connect(host="127.0.0.1", port=postgres.port, user="postgres", dbname=database)
    with connection, connection.cursor() as cursor:
        counts = {}
        for table in ["student", "submitted_assignment", "submitted_notebook", "grade"]:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    connection.close()
    return counts


def totals(manifest: dict) -> dict[str, float]:
    return {student: sum(entry["expected"].values()) for student, entry in manifest.items()}


def assert_class_graded(course: Path, url: str, manifest: dict) -> None:
    """Every submission has its six hand-worked scores and a graded notebook."""
    assert helpers.gradebook_scores(course, url) == helpers.expected_scores(manifest)
    for student in manifest:
        graded = course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert json.loads(graded.read_text())["cells"], student


def test_two_graders_and_an_export_at_once_lose_no_row_and_leave_each_grade_right(
        class_template, postgres, tmp_path):
    course, url, manifest = fresh_course(class_template, postgres, tmp_path, "concurrent")
    graders = [start_grader(course, url), start_grader(course, url)]
    first_grader_out = graders[0].stdout.readline()  # grading has begun: export while both write
    mid_batch = export(course, url, "mid-batch.csv")
    # The rest through the same line reader: communicate() reads the raw pipe, and would miss
    # what readline() has buffered.
    first_grader_out += graders[0].stdout.read()
    outputs = [grader.communicate(timeout=600) for grader in graders]
    assert [g.returncode for g in graders] == [0, 0], [err[-2000:] for _, err in outputs]

    reports = [[json.loads(line) for line in out.splitlines() if line.strip()]
               for out in (first_grader_out, outputs[1][0])]
    graded = [{r["student"] for r in report if r["status"] == "graded"} for report in reports]
    assert not graded[0] & graded[1], "a submission was graded twice"
    assert graded[0] | graded[1] == set(manifest)

    expected = totals(manifest)
    # A submission is recorded in one transaction: a reader never sees half of one.
    seen = {student: row for student, row in mid_batch.items() if row["timestamp"]}
    for student, row in seen.items():
        assert float(row["raw_score"]) == expected[student], (student, row)

    assert row_counts(postgres, "concurrent") == {
        "student": CLASS, "submitted_assignment": CLASS, "submitted_notebook": CLASS, "grade": CLASS * 6}
    assert_class_graded(course, url, manifest)
    final = export(course, url, "grades.csv")
    assert {student: float(row["raw_score"]) for student, row in final.items()} == expected


def test_a_grader_killed_with_sigkill_mid_batch_then_rerun_completes_the_class(class_template, postgres, tmp_path):
    course, url, manifest = fresh_course(class_template, postgres, tmp_path, "killed")
    slow = helpers.slow_down_last(course, manifest)
    grader = start_grader(course, url)
    done_before_kill = [json.loads(grader.stdout.readline())["student"] for _ in range(10)]
    os.killpg(grader.pid, signal.SIGKILL)
    grader.communicate()  # waits, and closes the pipes
    assert grader.returncode == -signal.SIGKILL

    rerun = helpers.coursekit(course, env=gradebook_env(url))
    skipped = {r["student"] for r in rerun if r["status"] == "skipped"}
    graded = {r["student"] for r in rerun if r["status"] == "graded"}
    assert set(done_before_kill) <= skipped, "work reported done before the kill was graded again"
    assert slow[-1] in graded, ("the kill did not land mid-batch", done_before_kill, rerun)
    assert skipped | graded == set(manifest) and not skipped & graded
    assert row_counts(postgres, "killed")["grade"] == CLASS * 6
    assert_class_graded(course, url, manifest)
