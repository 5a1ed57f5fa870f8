"""coursekit's own gradebook tables and grading at class scale.

coursekit stores each submission's reason and per-cell results in tables beside nbgrader's, in
the same transaction as the grades; nbgrader's own commands must keep working on that gradebook.
The claim lock is per notebook.  At scale, a generated class is graded through SQLite and through
a real PostgreSQL server, and every grade must be the one worked out by hand (no time checks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from sqlalchemy.exc import IntegrityError

from coursekit import extract, read
from coursekit.gradebook import GradebookWriter, GradedSubmission, claim, read_results
from tests.helpers import (
    ASSIGNMENT,
    copy_course,
    coursekit,
    expected_scores,
    generate_assignment,
    gradebook_scores,
    nbgrader_env,
    release_notebook,
    submit,
)

SMALL = 12


@pytest.fixture(scope="module")
def small_class(generated_class):
    _, template, manifest = generated_class("scale-small", SMALL)
    return template, manifest


def nbgrader(course, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=nbgrader_env(),
                          capture_output=True, text=True, timeout=600)


def db_url(course) -> str:
    return f"sqlite:///{course / 'gradebook.db'}"


def test_reasons_and_cell_messages_are_stored_with_the_grades(small_class, tmp_path):
    template, manifest = small_class
    course = copy_course(template, tmp_path / "course")
    printed = {r["student"]: r for r in coursekit(course)}
    stored = read_results(db_url(course), ASSIGNMENT)

    assert [r.student for r in stored] == sorted(manifest)
    for result in stored:
        shown = printed[result.student]
        assert result.notebook == ASSIGNMENT and result.current
        assert result.reason == shown["reason"]
        assert {c.grade_id: (c.score, c.max_score, c.message) for c in result.cells} == {
            gid: (cell["score"], cell["max_score"], cell["message"]) for gid, cell in shown["cells"].items()}
        assert {c.mode for c in result.cells} == {"replay"}
        assert {c.grade_id: c.score for c in result.cells} == manifest[result.student]["expected"]
    # the failing cells say why; a student with everything right has no message at all
    assert any(c.message for r in stored for c in r.cells)
    perfect = [r for r in stored if all(c.score == c.max_score for c in r.cells)]
    assert perfect and all(c.message is None for r in perfect for c in r.cells)


def test_nbgrader_commands_and_stock_autograde_work_on_a_gradebook_coursekit_wrote(small_class, tmp_path):
    template, manifest = small_class
    course = copy_course(template, tmp_path / "course")
    coursekit(course)
    for command in (["db", "student", "list"], ["db", "assignment", "list"], ["db", "upgrade"]):
        done = nbgrader(course, *command)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert "s000" in nbgrader(course, "db", "student", "list").stdout

    # s001 resubmits the untouched release; stock nbgrader regrades it on the same gradebook
    student = "s001"
    submit(course, student, release_notebook(course), timestamp="2026-11-21 12:00:00.000000 UTC")
    done = nbgrader(course, "autograde", ASSIGNMENT, "--student", student, "--force", "--log-level=ERROR")
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(gradebook_scores(course)[(student, cell)] == 0 for cell in manifest[student]["expected"])
    stale = {r.student: r.current for r in read_results(db_url(course), ASSIGNMENT)}
    assert stale.pop(student) is False  # the stored reason describes the older grading
    assert all(stale.values())

    # coursekit grades it again: the stored result is today's again
    coursekit(course, "--student", student, "--force")
    again = {r.student: r for r in read_results(db_url(course), ASSIGNMENT)}[student]
    assert again.current and all(c.score == 0 and c.message for c in again.cells)


def test_a_submission_whose_write_fails_costs_only_itself_and_stores_nothing(small_class, tmp_path):
    template, manifest = small_class
    course = copy_course(template, tmp_path / "course")
    coursekit(course, "--student", "s000")
    loaded = read.load_course(course)
    plan = extract.plan_assignment(loaded, ASSIGNMENT, ASSIGNMENT)
    scores_before, stored_before = gradebook_scores(course), read_results(db_url(course), ASSIGNMENT)

    def result(student: str, **change) -> GradedSubmission:
        submission = read.find_submissions(loaded, ASSIGNMENT, [ASSIGNMENT], [student])[0]
        return replace(GradedSubmission(
            submission=submission, scores={c.grade_id: c.points for c in plan.tests},
            max_scores={c.grade_id: c.points for c in plan.tests}, messages={c.grade_id: None for c in plan.tests},
            unanswered=(), notebook=json.dumps(release_notebook(course)).encode(), reason=f"{student} graded"), **change)

    # mode is NOT NULL in coursekit_cell_result: s002's last insert fails, after its grades were written
    batch = [result("s001"), result("s002", modes={"test_center_public": None}), result("s003")]
    with GradebookWriter(loaded) as writer:
        outcomes = writer.record_many([(r, plan) for r in batch])
        assert [type(o).__name__ for o in outcomes] == ["Recorded", "IntegrityError", "Recorded"]
        assert not writer.is_done(batch[1].submission, plan)
        with pytest.raises(IntegrityError):
            writer.record(batch[1], plan)
    scores = gradebook_scores(course)
    assert {k: v for k, v in scores.items() if k[0] == "s002"} == {}  # none of s002's auto scores
    assert {k: v for k, v in scores.items() if k[0] in ("s000",)} == scores_before
    assert all(scores[("s001", c.grade_id)] == c.points for c in plan.tests)
    stored = {r.student: r for r in read_results(db_url(course), ASSIGNMENT)}
    assert sorted(stored) == ["s000", "s001", "s003"] and stored["s000"] == stored_before[0]
    assert stored["s003"].reason == "s003 graded" and stored["s003"].current

    with GradebookWriter(loaded) as writer:  # the same submission, well formed, goes through
        writer.record(replace(batch[1], modes={}), plan)
    assert [r.student for r in read_results(db_url(course), ASSIGNMENT)] == ["s000", "s001", "s002", "s003"]


def test_the_claim_lock_is_per_notebook(small_class, tmp_path):
    template, _ = small_class
    course = read.load_course(copy_course(template, tmp_path / "course"))
    first, second = (read.Submission("s000", ASSIGNMENT, name, course.submitted_dir("s000", ASSIGNMENT) / f"{name}.ipynb")
                     for name in (ASSIGNMENT, "part2"))
    held = claim(course, first)
    assert held is not None
    try:
        assert claim(course, first) is None  # another grader holds this notebook
        other = claim(course, second)  # the student's other notebook is free
        assert other is not None
        other.release()
    finally:
        held.release()
    again = claim(course, first)
    assert again is not None
    again.release()


# ----------------------------------------------------------------------------- class scale

LARGE = 1000


@pytest.fixture(scope="module")
def large_class(generated_class):
    _, template, manifest = generated_class("scale-large", LARGE)
    return template, manifest


@pytest.mark.slow
def test_a_class_of_a_thousand_is_graded_right_through_sqlite(large_class, tmp_path):
    template, manifest = large_class
    course = copy_course(template, tmp_path / "course")
    printed = coursekit(course)
    assert [r["status"] for r in printed] == ["graded"] * LARGE
    assert gradebook_scores(course) == expected_scores(manifest)
    stored = read_results(db_url(course), ASSIGNMENT)
    assert len(stored) == LARGE and all(r.current for r in stored)


@pytest.mark.slow
def test_a_class_of_a_thousand_is_graded_right_through_a_postgresql_server(large_class, postgres, tmp_path):
    template, manifest = large_class
    course = copy_course(template, tmp_path / "course")
    env = nbgrader_env() | {"COURSEKIT_GRADEBOOK": postgres.create_database("scale")}
    generate_assignment(course, "--force", "--log-level=WARN", env=env)
    done = subprocess.run([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json"], cwd=course,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [json.loads(line)["status"] for line in done.stdout.splitlines()] == ["graded"] * LARGE
    assert gradebook_scores(course, env["COURSEKIT_GRADEBOOK"]) == expected_scores(manifest)
    stored = read_results(env["COURSEKIT_GRADEBOOK"], ASSIGNMENT)
    assert len(stored) == LARGE and all(r.current for r in stored)
    for command in (["db", "student", "list"], ["db", "upgrade"]):  # nbgrader tolerates our tables there too
        listed = subprocess.run([sys.executable, "-m", "nbgrader", *command], cwd=course, env=env,
                                capture_output=True, text=True, timeout=600)
        assert listed.returncode == 0, listed.stderr[-2000:]
