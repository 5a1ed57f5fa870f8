"""coursekit grades as a kernel runs the notebook top to bottom (issue 19, the planning side).

`tests/general_course/source/kernelish/` is an assignment written for this test.  Each of its
exercises is a way a course written by someone else broke the planner's assumptions:

* `test_birthday`: a solution cell changes a locked cell's object in place (`birthday(person)`,
  which calls `person.increase_age()`), and the test reads the object;
* `test_total`, `test_total_keeps_inventory`: a graded function may change its argument (a dict)
  in place, and a later test checks that it did not;
* `test_double`: the test calls a helper defined in a locked cell (nbgrader autotest style),
  and the helper calls the graded function;
* `test_answer`: the test looks the answer up with `dir()` and `globals()`, and imports what
  later cells use (`math`, `sha1`: nbgrader's autotest puts its setup code in the first test);
* `test_double_hash`: uses `sha1`, imported by the test above;
* `test_perimeter`: reads `SIDES`, computed by a locked cell with `math`, which only the earlier
  test cell imports;
* `teaching_error`: a master cell that does not parse (Python 2 `print`), `ipython_bits`: help
  (`double?`) and a line magic (`%time doubled = double(5)`) whose result a test reads;
* `test_broken`: a master test that fails with the master's own solution (0 for everyone, and a
  warning at planning time);
* `magics`: `%reset -f` in a locked cell, IPython's `%matplotlib inline`.

Three students (solved, wrong, untouched): the expected scores are worked out by hand from the
notebooks; `nbgrader autograde` must give them, and coursekit must give nbgrader's score for
every cell and nbgrader's "No response." comments.  A fourth, "duplicated", is the solved one
with a copy of `test_double` pasted above its solution and a copy of `test_total` below the
original.  nbgrader's DeduplicateIds keeps the last copy of each grade id (it walks the cells
backwards) and empties the others' metadata, which its metadata check then rejects, so stock
nbgrader 0.9.6 grades none of that notebook; coursekit grades it as DeduplicateIds leaves it
(jupyter/nbgrader#1083, a recovery), and its scores are checked against the hand-worked ones.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from tests.helpers import (
    COURSE_ID,
    GENERAL_COURSE,
    GENERAL_TIMESTAMP,
    copy_course,
    edit_cells,
    fill_stub,
    generate_assignment,
    grade_id,
    gradebook_grades,
    nbgrader_autograde,
    nbgrader_env,
    new_course,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ASSIGNMENT = "kernelish"
NOTEBOOKS = ("kernelish", "magics")

SOLVED = {"birthday": "p.increase_age()", "celebrate": "birthday(person)", "total": "return sum(inv.values())",
          "double": "return 2 * x", "answer": "answer = 42", "perimeter": "return 2 * sum(sides)",
          "cube": "return x ** 3"}
ANSWERS = {
    "solved": SOLVED,
    "wrong": {"birthday": "return p.age + 1",  # a new age, but p stays as it was
              "celebrate": "birthday(person)",
              "total": "n = sum(inv.values())\ninv.clear()\nreturn n",  # right total, emptied inventory
              "double": "return x + 2", "answer": "answer = 41", "perimeter": "return sum(sides)",
              "cube": "return x * 3"},
    "untouched": {},
    "duplicated": SOLVED,
}

# nbgrader's scores, worked out by hand from the notebooks.
EXPECTED = {
    "solved": {"test_birthday": 1, "test_total": 1, "test_total_keeps_inventory": 1, "test_double": 1,
               "test_answer": 1, "test_double_hash": 1, "test_perimeter": 1, "test_doubled": 1, "test_broken": 0,
               "test_cube": 1, "test_after_reset": 1},
    # birthday returns 37 and leaves Ada at 36; total empties the inventory; double(0) is 2;
    # answer is 41; the perimeter is 3; doubled is 7; cube(3) is 9
    "wrong": {"test_birthday": 0, "test_total": 1, "test_total_keeps_inventory": 0, "test_double": 0,
              "test_answer": 0, "test_double_hash": 0, "test_perimeter": 0, "test_doubled": 0, "test_broken": 0,
              "test_cube": 0, "test_after_reset": 1},
    # total raised before it could change the inventory; the reset cell's names are the locked cells'
    "untouched": {"test_birthday": 0, "test_total": 0, "test_total_keeps_inventory": 1, "test_double": 0,
                  "test_answer": 0, "test_double_hash": 0, "test_perimeter": 0, "test_doubled": 0, "test_broken": 0,
                  "test_cube": 0, "test_after_reset": 1},
}
EXPECTED["duplicated"] = EXPECTED["solved"]
# solution cells left as released: nbgrader's "No response." (its SaveAutoGrades writes it for
# every solution cell whose checksum is unchanged, graded or not)
NO_RESPONSE = {("untouched", cell) for cell in ("birthday", "celebrate", "total", "double", "answer",
                                                "perimeter", "cube")}


def _answer(text: str):
    return lambda source: fill_stub(source, text, keep_comment=False)


def _duplicate(nb: dict) -> None:
    """A copy of test_double pasted above the double solution, one of test_total below the original."""
    cells = nb["cells"]
    at = {grade_id(cell): i for i, cell in enumerate(cells)}
    double_copy, total_copy = copy.deepcopy(cells[at["test_double"]]), copy.deepcopy(cells[at["test_total"]])
    cells.insert(at["test_total"] + 1, total_copy)
    cells.insert(at["double"], double_copy)


def write_students(course: Path) -> None:
    for student, answers in ANSWERS.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for notebook in NOTEBOOKS:
            nb = json.loads((course / "release" / ASSIGNMENT / f"{notebook}.ipynb").read_text(encoding="utf-8"))
            edit_cells(nb, {gid: _answer(text) for gid, text in answers.items()})
            if student == "duplicated" and notebook == "kernelish":
                _duplicate(nb)
            (folder / f"{notebook}.ipynb").write_text(json.dumps(nb, indent=1), encoding="utf-8")
        (folder / "timestamp.txt").write_text(GENERAL_TIMESTAMP + "\n")


def comments(course: Path) -> set[tuple[str, str]]:
    """(student, solution cell) of every "No response." comment in the gradebook."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        return {(sub.student.id, comment.name) for sub in gb.find_assignment(ASSIGNMENT).submissions
                for nb in sub.notebooks for comment in nb.comments if comment.auto_comment == "No response."}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("kernelish")
    template = new_course(base / "template", ("nbgrader_config.py", "source"), origin=GENERAL_COURSE)
    generate_assignment(template, "--log-level=WARN", assignment=ASSIGNMENT)
    write_students(template)
    stock = copy_course(template, base / "nbgrader")
    shutil.rmtree(stock / "submitted" / "duplicated")  # nbgrader cannot grade it (module docstring)
    nbgrader_autograde(stock, "--log-level=ERROR", assignment=ASSIGNMENT, timeout=600)
    fast = copy_course(template, base / "coursekit")
    ck = subprocess.run([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json"], cwd=fast,
                        env=nbgrader_env(), capture_output=True, text=True, timeout=600)
    return stock, fast, ck


def test_nbgrader_gives_the_scores_worked_out_by_hand(graded):
    stock, _, _ = graded
    assert {key: score for key, (score, _) in gradebook_grades(stock, ASSIGNMENT, COURSE_ID).items()} == {
        (student, cell): score for student, cells in EXPECTED.items() for cell, score in cells.items()
        if student != "duplicated"}
    assert comments(stock) == NO_RESPONSE


def test_coursekit_gives_every_cell_the_nbgrader_score_and_comment(graded):
    stock, fast, ck = graded
    assert ck.returncode == 0, ck.stderr[-3000:]
    ours, theirs = gradebook_grades(fast, ASSIGNMENT, COURSE_ID), gradebook_grades(stock, ASSIGNMENT, COURSE_ID)
    wrong = {key: (ours.get(key), theirs[key]) for key in theirs if ours.get(key) != theirs[key]}
    assert not wrong, f"(coursekit, nbgrader) per cell: {wrong}"
    assert comments(fast) == comments(stock)


def test_duplicated_grade_ids_are_graded_at_their_last_copy_as_deduplicateids_keeps_them(graded):
    _, fast, ck = graded
    ours = gradebook_grades(fast, ASSIGNMENT, COURSE_ID)
    assert {cell: score for (student, cell), (score, _) in ours.items() if student == "duplicated"} == \
        EXPECTED["duplicated"]
    reason = next(json.loads(line)["reason"] for line in ck.stdout.splitlines()
                  if json.loads(line)["student"] == "duplicated" and json.loads(line)["notebook"] == "kernelish")
    assert "grade id test_double is used by 2 cells" in reason and "the last one was graded" in reason


def test_the_planner_warns_of_the_broken_test_and_the_cell_that_does_not_parse(graded):
    _, _, ck = graded
    assert "master test cell test_broken fails with the master's own solution" in ck.stderr
    assert "master locked cell teaching_error does not parse" in ck.stderr
    assert "None" not in ck.stderr


def test_each_cell_says_whether_it_was_replayed_or_run_in_the_sandbox(graded):
    _, _, ck = graded
    modes = {grade_id: cell["mode"] for line in ck.stdout.splitlines() if json.loads(line)["student"] == "solved"
             for grade_id, cell in json.loads(line)["cells"].items()}
    # replay only where it is provably a kernel's run: no student cell and no test in the
    # sandbox touches what these tests read
    assert {cell for cell, mode in modes.items() if mode == "replay"} == {
        "test_total", "test_total_keeps_inventory", "test_cube", "test_after_reset"}
