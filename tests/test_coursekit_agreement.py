"""coursekit gives the same per-cell scores as `nbgrader autograde`, and leaves a gradebook the
rest of nbgrader (export, feedback) works with.

One generated class of the fixture course (helpers.generate_class) holds every variant of every
exercise (correct in several styles, each typical mistake, untouched stubs, mixtures, extra
scratch cells).  Stock nbgrader grades one copy of the course (a few seconds per notebook, most of
it starting a kernel), coursekit another.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import nbformat
import pytest

from tests.helpers import (
    ASSIGNMENT,
    SCALING_EXERCISES,
    copy_course,
    coursekit,
    expected_scores,
    generate_class,
    gradebook_scores,
    nbgrader_autograde,
    nbgrader_env,
)

# The module's first test waits for stock nbgrader to grade the whole sample (about 40 s):
# `make test` runs it, `make test-quick` skips it.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow]

SAMPLE = 12  # the first 9 hold every variant (helpers.SCALING_EXERCISES), the rest mix them
TESTS = [test for exercise in SCALING_EXERCISES.values() for test in exercise.tests]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, template_course):
    base = tmp_path_factory.mktemp("agreement")
    template = copy_course(template_course, base / "template")
    manifest = generate_class(template, SAMPLE)
    stock, fast = copy_course(template, base / "stock"), copy_course(template, base / "coursekit")
    nbgrader_autograde(stock, "--log-level=WARN")
    results = coursekit(fast)
    return stock, fast, manifest, results


def test_the_sample_holds_every_variant_of_every_exercise(graded):
    _, _, manifest, _ = graded
    for gid, exercise in SCALING_EXERCISES.items():
        used = {entry["variants"][gid] for entry in manifest.values()}
        assert used == {v.name for v in exercise.variants}, gid


def test_per_cell_scores_equal_those_of_nbgrader_autograde(graded):
    stock, fast, _, _ = graded
    stock_scores = gradebook_scores(stock)
    assert len(stock_scores) == SAMPLE * len(TESTS)
    assert gradebook_scores(fast) == stock_scores


def test_scores_are_the_ones_worked_out_by_hand_for_each_variant(graded):
    _, fast, manifest, _ = graded
    assert gradebook_scores(fast) == expected_scores(manifest)


def test_json_report_has_one_object_per_submission_with_cells_and_reason(graded):
    _, _, manifest, results = graded
    assert sorted(r["student"] for r in results) == sorted(manifest)
    for result in results:
        assert result["status"] == "graded" and result["notebook"] == ASSIGNMENT
        assert result["max_score"] == 9.0
        assert set(result["cells"]) == set(TESTS)
        assert result["score"] == sum(cell["score"] for cell in result["cells"].values())
    # s003 divided a constant column by its standard deviation 0: the reason carries the public
    # test's diagnosis.
    s003 = next(r for r in results if r["student"] == "s003")
    assert manifest["s003"]["variants"]["standardize"] == "nan-constant"
    assert "where a column is constant" in s003["cells"]["test_standardize_public"]["message"]
    assert "test_standardize_public" in s003["reason"]


def test_autograded_notebook_shows_master_tests_with_their_replayed_outputs(graded):
    _, fast, manifest, _ = graded
    nb = nbformat.read(fast / "autograded" / "s003" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    hidden = cells["test_standardize_hidden"]
    assert "### BEGIN HIDDEN TESTS" in hidden.source  # the gradebook's test, not the release's
    assert hidden.metadata.nbgrader["points"] == 2 and hidden.metadata.nbgrader["checksum"]
    assert [o.output_type for o in cells["test_standardize_public"].outputs][-1] == "error"
    correct = nbformat.read(fast / "autograded" / "s000" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    public = next(c for c in correct.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_center_public")
    assert manifest["s000"]["variants"]["center"] == "correct"
    assert "center: all tests passed." in "".join(o.get("text", "") for o in public.outputs)
    assert (fast / "autograded" / "s003" / ASSIGNMENT / "timestamp.txt").is_file()


def test_nbgrader_export_and_generate_feedback_work_on_a_coursekit_gradebook(graded):
    _, fast, manifest, _ = graded
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--log-level=WARN"], cwd=fast,
                   env=nbgrader_env(), check=True, timeout=300)
    with open(fast / "grades.csv", newline="") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    for student, entry in manifest.items():
        assert float(rows[student]["raw_score"]) == sum(entry["expected"].values())
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", ASSIGNMENT, "--student", "s003",
                    "--log-level=WARN"], cwd=fast, env=nbgrader_env(), check=True, timeout=300)
    html = (fast / "feedback" / "s003" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    expected = sum(manifest["s003"]["expected"].values())
    assert f"Score: {expected:g}" in html or f"{expected:g} / 9" in html or f"({expected:g} / 9" in html


def test_a_second_run_skips_what_is_graded_and_force_grades_again(graded):
    _, fast, manifest, _ = graded
    again = coursekit(fast)
    assert {r["status"] for r in again} == {"skipped"} and len(again) == len(manifest)
    before = gradebook_scores(fast)
    forced = coursekit(fast, "--force", "--student", "s000", "s003")
    # Lines come in the order the workers finish, not in the order of the students.
    by_student = {r["student"]: r for r in forced}
    assert sorted(by_student) == ["s000", "s003"] and {r["status"] for r in forced} == {"graded"}
    assert gradebook_scores(fast) == before
    assert by_student["s003"]["cells"]["test_standardize_public"]["score"] == 0.0
