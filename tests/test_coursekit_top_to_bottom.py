"""coursekit grades what a top-to-bottom run of the notebook gives, as `nbgrader autograde` does:
correct notebooks written in unusual ways get their points, and a notebook that only works out
of order does not.

Each case changes the He exercise of a correctly solved notebook; the other two exercises stay
correct.  The expected scores are nbgrader's (the slow test checks them against stock nbgrader).
"""

from __future__ import annotations

import json
import textwrap

import nbformat
import pytest

from scripts.course import ASSIGNMENT
from scripts.student_work import grade_id, index_of
from tests.helpers import (
    FULL,
    assert_graded,
    copy_course,
    course_with,
    coursekit,
    gradebook_scores,
    nbgrader_autograde,
    solved,
)

HE = "initialize_parameters_he"
NO_HE = dict(FULL, he=0.0)


def he_source() -> str:
    nb = solved()
    return nb["cells"][index_of(nb, HE)]["source"]


def with_he(source: str) -> dict:
    nb = solved()
    nb["cells"][index_of(nb, HE)]["source"] = source
    return nb


def code_cell(source: str) -> dict:
    return nbformat.v4.new_code_cell(source)


def cell_magic() -> dict:
    return with_he("%%time\n" + he_source())


def crlf() -> dict:
    return with_he(he_source().replace("\n", "\r\n"))


def bare_cr() -> dict:
    return with_he(he_source().replace("\n", "\r"))


def fullwidth_name() -> dict:
    """Python normalises identifiers (NFKC): a fullwidth i spells the same name."""
    return with_he(he_source().replace(f"def {HE}", "def \uff49" + HE[1:]))


def defined_through_exec() -> dict:
    return with_he(f"exec({he_source()!r})\n")


def installed_through_global() -> dict:
    body = textwrap.indent(he_source(), "    ")
    return with_he(f"def install():\n    global {HE}\n{body}\n\ninstall()\n")


def setting_in_another_cell() -> dict:
    """The scale comes from a dict that a cell further down (still above the tests) fills in."""
    nb = with_he("SETTINGS = {}\n" + he_source().replace("np.sqrt(2 / layers_dims[l - 1])",
                                                          "np.sqrt(SETTINGS['gain'] / layers_dims[l - 1])"))
    nb["cells"].insert(index_of(nb, HE) + 1, code_cell("SETTINGS['gain'] = 2\n"))
    return nb


def attribute_in_another_cell() -> dict:
    nb = with_he("class Options:\n    gain = 1\n\n" + he_source().replace(
        "np.sqrt(2 / layers_dims[l - 1])", "np.sqrt(Options.gain / layers_dims[l - 1])"))
    nb["cells"].insert(index_of(nb, HE) + 1, code_cell("Options.gain = 2\n"))
    return nb


def everything_below_the_tests() -> dict:
    """Helper, constant and function in the last cell: a top-to-bottom run fails the He tests."""
    nb = with_he("# see the end of the notebook\n")
    nb["cells"].append(code_cell("GAIN = 2\n\ndef he_scale(n):\n    return np.sqrt(GAIN / n)\n\n"
                                 + he_source().replace("np.sqrt(2 / layers_dims[l - 1])", "he_scale(layers_dims[l - 1])")))
    return nb


def helper_below_the_tests() -> dict:
    nb = with_he(he_source().replace("np.sqrt(2 / layers_dims[l - 1])", "he_scale(layers_dims[l - 1])"))
    nb["cells"].append(code_cell("def he_scale(n):\n    return np.sqrt(2 / n)\n"))
    return nb


def redefined_wrong_between_the_tests() -> dict:
    """A wrong redefinition between the public and the hidden He test: only the hidden one fails."""
    nb = solved()
    nb["cells"].insert(index_of(nb, "test_he_hidden"),
                       code_cell(f"def {HE}(layers_dims):\n    return {{}}\n"))
    return nb


CASES = {
    "cell-magic": (cell_magic, FULL),
    "crlf": (crlf, FULL),
    "bare-cr": (bare_cr, FULL),
    "fullwidth-name": (fullwidth_name, FULL),
    "exec": (defined_through_exec, FULL),
    "global-installer": (installed_through_global, FULL),
    "subscript-setting": (setting_in_another_cell, FULL),
    "attribute-setting": (attribute_in_another_cell, FULL),
    "all-below-tests": (everything_below_the_tests, NO_HE),
    "helper-below-tests": (helper_below_the_tests, NO_HE),
    "redefined-between-tests": (redefined_wrong_between_the_tests, dict(FULL, he=1.0)),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory, template_course):
    return course_with(tmp_path_factory, template_course, "top-to-bottom", {student: make() for student, (make, _) in CASES.items()})


@pytest.fixture(scope="module")
def results(course):
    return {r["student"]: r for r in coursekit(course)}


@pytest.mark.parametrize("student", CASES)
def test_the_grade_is_that_of_a_top_to_bottom_run(results, student):
    assert_graded(results[student], CASES[student][1])


def test_a_function_defined_only_below_its_tests_is_said_so(results):
    assert f"{HE} is defined only below its first test" in results["all-below-tests"]["reason"]
    assert "NameError: name 'he_scale' is not defined" in results["helper-below-tests"]["reason"]


def test_the_training_and_plot_cells_of_the_master_are_still_skipped(course, results):
    graded = json.loads((course / "autograded" / "cell-magic" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    outputs = {grade_id(c): c.get("outputs") for c in graded["cells"] if grade_id(c)}
    assert outputs["train_he"] == [] and outputs["plot_he"] == []  # not run: no output
    assert outputs["test_he_public"]  # run: the public test prints the parameters


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_stock_nbgrader_gives_the_same_per_cell_scores(course, results, tmp_path):
    stock = copy_course(course, tmp_path / "stock")
    nbgrader_autograde(stock, "--force", "--log-level=ERROR")
    assert gradebook_scores(stock) == gradebook_scores(course)
