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

from tests.helpers import (
    ASSIGNMENT,
    CORRECT,
    FULL,
    assert_graded,
    copy_course,
    coursekit,
    grade_id,
    gradebook_scores,
    index_of,
    release_notebook,
    solve,
    submit,
)


def duplicated_ids(release: dict) -> dict:
    """jupyter/nbgrader#1083: the standardize cell copied; the copy above still holds the stub."""
    nb = solve(copy.deepcopy(release), CORRECT)
    at = index_of(nb, "standardize")
    stub = copy.deepcopy(release["cells"][index_of(release, "standardize")])
    nb["cells"].insert(at, stub)
    test = index_of(nb, "test_standardize_public")
    nb["cells"].insert(test + 1, copy.deepcopy(nb["cells"][test]))
    return nb


def deleted_tests(release: dict) -> dict:
    """jupyter/nbgrader#1682: both test cells of the noise exercise deleted."""
    nb = solve(copy.deepcopy(release), CORRECT)
    nb["cells"] = [c for c in nb["cells"] if grade_id(c) not in ("test_noise_public", "test_noise_hidden")]
    return nb


def deleted_test_below_stripped_solution(release: dict) -> dict:
    """The add_noise solution cell lost its nbgrader metadata (#1398) and the public noise test
    was deleted (#1682); the answers are correct.  Stock nbgrader with the course's
    `OverwriteCells.add_missing_cells` puts a deleted test back right after the cell that
    precedes it in the master, looked up among the submission's graded and solution cells; the
    add_noise solution cell is no longer one, so add_missing_cells raises KeyError and nbgrader
    grades nothing of this notebook."""
    nb = solve(copy.deepcopy(release), CORRECT)
    del nb["cells"][index_of(nb, "add_noise")]["metadata"]["nbgrader"]
    del nb["cells"][index_of(nb, "test_noise_public")]
    return nb


def solution_in_markdown(release: dict) -> dict:
    """jupyter/nbgrader#1941: the center solution cell turned into markdown."""
    nb = solve(copy.deepcopy(release), CORRECT)
    cell = nb["cells"][index_of(nb, "center")]
    cell["cell_type"] = "markdown"
    del cell["outputs"], cell["execution_count"]
    return nb


def lost_metadata(release: dict) -> dict:
    """jupyter/nbgrader#1398: every cell copied into a new notebook, without nbgrader metadata."""
    nb = solve(copy.deepcopy(release), CORRECT)
    for cell in nb["cells"]:
        cell["metadata"] = {}
    return nb


def syntax_error_in_noise(release: dict) -> dict:
    nb = solve(copy.deepcopy(release), CORRECT)
    cell = nb["cells"][index_of(nb, "add_noise")]
    cell["source"] = cell["source"].replace("np.random.randn(*X.shape)", "np.random.randn(*X.shape))")
    return nb


def unparsable_center(release: dict) -> dict:
    """A null byte in one cell and absurdly deep nesting in a scratch cell: hostile to the parser."""
    nb = solve(copy.deepcopy(release), CORRECT)
    cell = nb["cells"][index_of(nb, "center")]
    cell["source"] += "\x00"
    # Both spell "np", a name the functions read, so coursekit has to parse them.
    nb["cells"].append(nbformat.v4.new_code_cell("np = " + "(" * 300 + ")" * 300))
    nb["cells"].append(nbformat.v4.new_code_cell("np = " + "+".join(["1"] * 30000)))
    return nb


def standardize_deleted(release: dict) -> dict:
    nb = solve(copy.deepcopy(release), CORRECT)
    del nb["cells"][index_of(nb, "standardize")]
    return nb


def scratch_after_tests(release: dict) -> dict:
    """A broken redefinition below the tests, and an endless loop and heavy work at top level."""
    nb = solve(copy.deepcopy(release), CORRECT)
    nb["cells"].append(nbformat.v4.new_code_cell(
        "def standardize(X):\n    raise NotImplementedError()\n\n"
        "add_noise(np.zeros((3000, 3000)), 1.0)\nwhile True:\n    pass\n"))
    return nb


def magics(release: dict) -> dict:
    nb = solve(copy.deepcopy(release), CORRECT)
    cell = nb["cells"][index_of(nb, "standardize")]
    cell["source"] = "%load_ext autoreload\n!ls\n" + cell["source"].replace(
        "    std = X.std(axis=0)", "    %time 1 + 1\n    std = X.std(axis=0)")
    return nb


CASES = {
    "dup-ids": (duplicated_ids, FULL, "#1083"),
    "deleted-tests": (deleted_tests, FULL, "#1682"),
    # nbgrader cannot grade it (above): coursekit gives 0 and says what to restore, never a guess
    "deleted-test-no-place": (deleted_test_below_stripped_solution, dict.fromkeys(FULL, 0.0),
                              "restore the cell test_noise_public from the released notebook"),
    "markdown-solution": (solution_in_markdown, FULL, "#1941"),
    "no-metadata": (lost_metadata, FULL, "#1398"),
    "syntax-error": (syntax_error_in_noise, dict(FULL, noise=0.0), "syntax error"),
    "unparsable": (unparsable_center, dict(FULL, center=0.0), "held center"),
    "standardize-deleted": (standardize_deleted, dict(FULL, standardize=0.0), "no definition of standardize"),
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
        submit(course, student, make(release_notebook(template_course)))
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
    assert ("test cell test_noise_public was deleted (jupyter/nbgrader#1682), and the cell above it in the release, "
            "add_noise, is not in the notebook with its nbgrader metadata") in result["reason"]
    scores = gradebook_scores(course)
    assert [scores[("deleted-test-no-place", t)] for t in result["cells"]] == [0.0] * 6


def test_deleted_test_cells_come_back_in_the_autograded_notebook(results):
    course, _ = results
    nb = json.loads((course / "autograded" / "deleted-tests" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    ids = [grade_id(c) for c in nb["cells"]]
    at = ids.index("add_noise")
    assert ids[at + 1:at + 3] == ["test_noise_public", "test_noise_hidden"]
    assert ids.count("test_standardize_public") == 1  # and duplicated ids are not written twice elsewhere either
