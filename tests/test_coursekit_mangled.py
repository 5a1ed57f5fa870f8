"""Mangled and unreadable notebooks: a correct function earns its points however mangled the
notebook around it, a missing one costs only its exercise, and a file that is not a notebook
scores zero with a reason, without stopping the batch.

Each case is one student of one course, graded in one run of the real CLI.
"""

from __future__ import annotations

import copy
import json

import nbformat
import pytest

from scripts.course import ASSIGNMENT
from scripts.student_work import grade_id, index_of
from tests.helpers import (
    FULL,
    assert_graded,
    copy_course,
    coursekit,
    gradebook_scores,
    release_notebook,
    solved,
    submit,
)


def duplicated_ids() -> dict:
    """jupyter/nbgrader#1083: the He cell copied; the copy above still holds the stub."""
    nb = solved()
    at = index_of(nb, "initialize_parameters_he")
    stub = copy.deepcopy(release_notebook()["cells"][index_of(release_notebook(), "initialize_parameters_he")])
    nb["cells"].insert(at, stub)
    test = index_of(nb, "test_he_public")
    nb["cells"].insert(test + 1, copy.deepcopy(nb["cells"][test]))
    return nb


def deleted_tests() -> dict:
    """jupyter/nbgrader#1682: both test cells of the random exercise deleted."""
    nb = solved()
    nb["cells"] = [c for c in nb["cells"] if grade_id(c) not in ("test_random_public", "test_random_hidden")]
    return nb


def deleted_test_below_stripped_solution() -> dict:
    """The random solution cell lost its nbgrader metadata (#1398) and the public random test
    was deleted (#1682); the answers are correct.  Stock nbgrader with the course's
    `OverwriteCells.add_missing_cells` puts a deleted test back right after the cell that
    precedes it in the master, looked up among the submission's graded and solution cells; the
    random solution cell is no longer one, so add_missing_cells raises KeyError and nbgrader
    grades nothing of this notebook."""
    nb = solved()
    del nb["cells"][index_of(nb, "initialize_parameters_random")]["metadata"]["nbgrader"]
    del nb["cells"][index_of(nb, "test_random_public")]
    return nb


def solution_in_markdown() -> dict:
    """jupyter/nbgrader#1941: the zeros solution cell turned into markdown."""
    nb = solved()
    cell = nb["cells"][index_of(nb, "initialize_parameters_zeros")]
    cell["cell_type"] = "markdown"
    del cell["outputs"], cell["execution_count"]
    return nb


def lost_metadata() -> dict:
    """jupyter/nbgrader#1398: every cell copied into a new notebook, without nbgrader metadata."""
    nb = solved()
    for cell in nb["cells"]:
        cell["metadata"] = {}
    return nb


def syntax_error_in_random() -> dict:
    nb = solved()
    cell = nb["cells"][index_of(nb, "initialize_parameters_random")]
    cell["source"] = cell["source"].replace("return parameters", "return parameters)")
    return nb


def unparsable_zeros() -> dict:
    """A null byte in one cell and absurdly deep nesting in a scratch cell: hostile to the parser."""
    nb = solved()
    cell = nb["cells"][index_of(nb, "initialize_parameters_zeros")]
    cell["source"] += "\x00"
    # Both spell "np", a name the functions read, so coursekit has to parse them.
    nb["cells"].append(nbformat.v4.new_code_cell("np = " + "(" * 300 + ")" * 300))
    nb["cells"].append(nbformat.v4.new_code_cell("np = " + "+".join(["1"] * 30000)))
    return nb


def he_deleted() -> dict:
    nb = solved()
    del nb["cells"][index_of(nb, "initialize_parameters_he")]
    return nb


def scratch_after_tests() -> dict:
    """A broken redefinition below the tests, and an endless loop and a training at top level."""
    nb = solved()
    nb["cells"].append(nbformat.v4.new_code_cell(
        "def initialize_parameters_he(layers_dims):\n    raise NotImplementedError()\n\n"
        "model(train_X, train_Y, initialization='he')\nwhile True:\n    pass\n"))
    return nb


def magics() -> dict:
    nb = solved()
    cell = nb["cells"][index_of(nb, "initialize_parameters_he")]
    cell["source"] = "%load_ext autoreload\n!ls\n" + cell["source"].replace(
        "    parameters = {}", "    parameters = {}\n    %time 1 + 1")
    return nb


CASES = {
    "dup-ids": (duplicated_ids, FULL, "#1083"),
    "deleted-tests": (deleted_tests, FULL, "#1682"),
    # nbgrader cannot grade it (above): coursekit gives 0 and says what to restore, never a guess
    "deleted-test-no-place": (deleted_test_below_stripped_solution, dict.fromkeys(FULL, 0.0),
                              "restore the cell test_random_public from the released notebook"),
    "markdown-solution": (solution_in_markdown, FULL, "#1941"),
    "no-metadata": (lost_metadata, FULL, "#1398"),
    "syntax-error": (syntax_error_in_random, dict(FULL, random=0.0), "syntax error"),
    "unparsable": (unparsable_zeros, dict(FULL, zeros=0.0), "held initialize_parameters_zeros"),
    "he-deleted": (he_deleted, dict(FULL, he=0.0), "no definition of initialize_parameters_he"),
    "scratch-after-tests": (scratch_after_tests, FULL, "defined 2 times"),
    "magics": (magics, FULL, None),
}
BAD = {
    "not-json": (b'{"cells": [', "not JSON"),
    "not-utf8": ('{"cells": [], "note": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    "empty": (b"", "empty"),
    "not-a-notebook": (b"[1, 2, 3]", "not a notebook"),
    "huge": (None, "larger than"),
    "missing": (None, "no submitted file"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory, template_course):
    base = tmp_path_factory.mktemp("mangled")
    course = copy_course(template_course, base / "course")
    for student, (make, _, _) in CASES.items():
        submit(course, student, make())
    for student, (data, _) in BAD.items():
        if student == "huge":
            path = submit(course, student, b"")
            with open(path, "wb") as fh:
                fh.truncate(60 * 2**20)  # sparse: larger than the cap without using the disk
        elif student == "missing":
            (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        else:
            submit(course, student, data)
    graded = {r["student"]: r for r in coursekit(course)}
    return course, graded


@pytest.mark.parametrize("student", CASES)
def test_functions_are_found_by_name_and_workarounds_are_reported(results, student):
    _, graded = results
    _, expected, note = CASES[student]
    assert_graded(graded[student], expected, note or "")


@pytest.mark.parametrize("student", BAD)
def test_unreadable_submissions_score_zero_with_a_reason(results, student):
    course, graded = results
    assert graded[student]["status"] == "graded"
    assert graded[student]["score"] == 0.0 and graded[student]["max_score"] == 9.0
    assert BAD[student][1] in graded[student]["reason"]
    scores = gradebook_scores(course)
    assert [scores[(student, t)] for t in graded[student]["cells"]] == [0.0] * 6


def test_a_deleted_test_with_no_place_to_go_back_scores_zero_saying_what_to_restore(results):
    course, graded = results
    result = graded["deleted-test-no-place"]
    assert (result["score"], result["max_score"]) == (0.0, 9.0)
    assert ("test cell test_random_public was deleted (jupyter/nbgrader#1682), and the cell above it in the release, "
            "initialize_parameters_random, is not in the notebook with its nbgrader metadata") in result["reason"]
    scores = gradebook_scores(course)
    assert [scores[("deleted-test-no-place", t)] for t in result["cells"]] == [0.0] * 6


def test_deleted_test_cells_come_back_in_the_autograded_notebook(results):
    course, _ = results
    nb = json.loads((course / "autograded" / "deleted-tests" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    ids = [grade_id(c) for c in nb["cells"]]
    at = ids.index("initialize_parameters_random")
    assert ids[at + 1:at + 3] == ["test_random_public", "test_random_hidden"]
    assert ids.count("test_he_public") == 1  # and duplicated ids are not written twice elsewhere either
