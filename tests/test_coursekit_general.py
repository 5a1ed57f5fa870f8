"""coursekit on an assignment that is not the lesson's (issue 12, "prove the generality").

`tests/general_course/` is a small nbgrader course written for these tests: the assignment
`textstats` has two notebooks, `words` (a string exercise) and `stats` (a statistics exercise).
Between them they hold what the lesson does not:

* several graded functions, one of which calls another (`word_counts` -> `tokenize`,
  `top_words` -> `word_counts`, `variance` -> `mean`);
* a graded cell that checks a variable (`sample_std`), not a function;
* a test that calls a helper defined in a locked cell (`check`, `close`);
* a test that deletes a name (`del tokenize`, to check that `word_counts` builds on it);
* a test whose argument is not plain data (`mean(range(1, 101))`);
* a result that must stay a tuple (`top_words`);
* a manually graded answer (a markdown cell).

Four students (solved, partial, wrong, untouched) are written here by hand.  The real
`nbgrader generate_assignment` builds the release in a temporary course; `nbgrader autograde`
(one run, all students) grades one copy, `coursekit autograde` another.  coursekit must give
every cell it grades the score nbgrader gives, and anything it does not grade it must refuse
at planning time, before any submission is graded, with a message naming the cell.  Never a
wrong grade.  Which cells coursekit grades today and which it refuses is stated in README
("A second assignment").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    ANSWERS,
    COURSE_ID,
    EXPECTED,
    GENERAL_COURSE,
    NOTEBOOKS,
    TEXTSTATS,
    copy_course,
    generate_assignment,
    gradebook_grades,
    nbgrader_autograde,
    nbgrader_env,
    new_course,
    write_students,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

def _coursekit(course: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursekit", "autograde", TEXTSTATS, "--json"], cwd=course,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """nbgrader's grades of the whole assignment, and coursekit's of two courses: the assignment
    as it is, and one whose master holds only the `words` notebook (each nbgrader notebook runs in
    its own kernel, so nbgrader's scores of `words` cells are the same in both)."""
    base = tmp_path_factory.mktemp("general")
    template = new_course(base / "template", ("nbgrader_config.py", "source"), origin=GENERAL_COURSE)
    generate_assignment(template, "--log-level=WARN", assignment=TEXTSTATS)
    write_students(template)
    stock = copy_course(template, base / "nbgrader")
    nbgrader_autograde(stock, "--log-level=ERROR", assignment=TEXTSTATS, timeout=600)
    words_only = copy_course(template, base / "words-only")
    (words_only / "source" / TEXTSTATS / "stats.ipynb").unlink()
    runs = {}
    for name, course in (("textstats", copy_course(template, base / "coursekit")), ("words only", words_only)):
        ck = _coursekit(course)
        runs[name] = (gradebook_grades(course, TEXTSTATS, COURSE_ID), ck)
    return gradebook_grades(stock, TEXTSTATS, COURSE_ID), runs


def test_nbgrader_gives_the_scores_worked_out_by_hand(graded):
    stock, _ = graded
    assert {key: score for key, (score, _) in stock.items()} == {
        (student, cell): score for student, cells in EXPECTED.items() for cell, score in cells.items()}
    # an answered manual cell waits for a person, an untouched one does not
    assert stock[("solved", "explain_tokenize")] == (None, True)
    assert stock[("untouched", "explain_tokenize")] == (0, False)


@pytest.mark.parametrize("run", ["textstats", "words only"])
def test_every_cell_coursekit_grades_has_the_nbgrader_score(graded, run):
    stock, runs = graded
    fast, ck = runs[run]
    assert ck.returncode in (0, 2), ck.stderr[-3000:]  # 1 would mean a grader fault on a submission
    # (the words-only course's gradebook still lists the stats cells, which nobody grades there)
    cells = {cell for name, cells in NOTEBOOKS.items() if run == "textstats" or name == "words" for cell in cells}
    wrong = {key: (fast[key], stock.get(key)) for key in fast if key[1] in cells and fast[key] != stock.get(key)}
    assert not wrong, f"coursekit graded differently from nbgrader, (coursekit, nbgrader) per cell: {wrong}"


@pytest.mark.parametrize("run", ["textstats", "words only"])
def test_what_coursekit_does_not_grade_it_refuses_at_planning_time_naming_the_cell(graded, run):
    stock, runs = graded
    fast, ck = runs[run]
    notebooks = NOTEBOOKS if run == "textstats" else {"words": NOTEBOOKS["words"]}
    expected = {(student, cell) for student in ANSWERS for cells in notebooks.values() for cell in cells}
    missing = expected - set(fast)
    if not missing:
        assert ck.returncode == 0, ck.stderr[-3000:]
        return
    # Refused at planning time: nothing graded, exit 2, and a message naming a cell.
    assert ck.returncode == 2 and not fast and not ck.stdout.strip(), (ck.returncode, ck.stdout[-2000:])
    message = ck.stderr.strip()
    cells = {cell for cells in notebooks.values() for cell in cells} | {
        "tokenize", "word_counts", "top_words", "mean", "variance", "sample_std", "words_setup", "stats_setup"}
    assert any(cell in message for cell in cells), message
