"""coursekit grades what a top-to-bottom run of the notebook gives, as `nbgrader autograde` does:
correct notebooks written in unusual ways get their points, and a notebook that only works out
of order does not.

Each case changes the standardize exercise of a correctly solved notebook; the other two exercises stay
correct.  The expected scores are nbgrader's (the slow test checks them against stock nbgrader).
"""

from __future__ import annotations

import json
import textwrap

import nbformat
import pytest

from tests.helpers import (
    ASSIGNMENT,
    FULL,
    assert_graded,
    copy_course,
    course_with,
    coursekit,
    grade_id,
    gradebook_scores,
    index_of,
    nbgrader_autograde,
    solved,
)

HE = "standardize"  # the exercise each case changes
NO_HE = dict(FULL, standardize=0.0)
SAFE = "np.where(std == 0, 1.0, std)"  # how the correct solution keeps a constant column from dividing by 0


def he_source(nb: dict) -> str:
    return nb["cells"][index_of(nb, HE)]["source"]


def with_he(nb: dict, source: str) -> dict:
    nb["cells"][index_of(nb, HE)]["source"] = source
    return nb


def code_cell(source: str) -> dict:
    return nbformat.v4.new_code_cell(source)


def cell_magic(nb: dict) -> dict:
    return with_he(nb, "%%time\n" + he_source(nb))


def crlf(nb: dict) -> dict:
    return with_he(nb, he_source(nb).replace("\n", "\r\n"))


def bare_cr(nb: dict) -> dict:
    return with_he(nb, he_source(nb).replace("\n", "\r"))


def fullwidth_name(nb: dict) -> dict:
    """Python normalises identifiers (NFKC): a fullwidth s spells the same name."""
    return with_he(nb, he_source(nb).replace(f"def {HE}", "def \uff53" + HE[1:]))


def defined_through_exec(nb: dict) -> dict:
    return with_he(nb, f"exec({he_source(nb)!r})\n")


def installed_through_global(nb: dict) -> dict:
    body = textwrap.indent(he_source(nb), "    ")
    return with_he(nb, f"def install():\n    global {HE}\n{body}\n\ninstall()\n")


def setting_in_another_cell(nb: dict) -> dict:
    """The ddof comes from a dict that a cell further down (still above the tests) fills in."""
    with_he(nb, "SETTINGS = {}\n" + he_source(nb).replace("X.std(axis=0)", "X.std(axis=0, ddof=SETTINGS['ddof'])"))
    nb["cells"].insert(index_of(nb, HE) + 1, code_cell("SETTINGS['ddof'] = 0\n"))
    return nb


def attribute_in_another_cell(nb: dict) -> dict:
    """A class attribute, wrong where it is defined, set right by a cell further down."""
    with_he(nb, "class Options:\n    ddof = 1\n\n" + he_source(nb).replace("X.std(axis=0)",
                                                                        "X.std(axis=0, ddof=Options.ddof)"))
    nb["cells"].insert(index_of(nb, HE) + 1, code_cell("Options.ddof = 0\n"))
    return nb


def everything_below_the_tests(nb: dict) -> dict:
    """Helper, constant and function in the last cell: a top-to-bottom run fails the tests."""
    source = he_source(nb)
    with_he(nb, "# see the end of the notebook\n")
    nb["cells"].append(code_cell("FLOOR = 1.0\n\ndef safe(std):\n    return np.where(std == 0, FLOOR, std)\n\n"
                                 + source.replace(SAFE, "safe(std)")))
    return nb


def helper_below_the_tests(nb: dict) -> dict:
    with_he(nb, he_source(nb).replace(SAFE, "safe(std)"))
    nb["cells"].append(code_cell(f"def safe(std):\n    return {SAFE}\n"))
    return nb


def redefined_wrong_between_the_tests(nb: dict) -> dict:
    """A wrong redefinition between the public and the hidden test: only the hidden one fails."""
    nb["cells"].insert(index_of(nb, f"test_{HE}_hidden"), code_cell(f"def {HE}(X):\n    return {{}}\n"))
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
    "redefined-between-tests": (redefined_wrong_between_the_tests, dict(FULL, standardize=1.0)),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory, template_course):
    return course_with(tmp_path_factory, template_course, "top-to-bottom", {student: make(solved(template_course))
                                                                            for student, (make, _) in CASES.items()})


@pytest.fixture(scope="module")
def results(course):
    return {r["student"]: r for r in coursekit(course)}


@pytest.mark.parametrize("student", CASES)
def test_the_grade_is_that_of_a_top_to_bottom_run(results, student):
    assert_graded(results[student], CASES[student][1])


def test_a_function_defined_only_below_its_tests_is_said_so(results):
    assert f"{HE} is defined only below its first test" in results["all-below-tests"]["reason"]
    assert "NameError: name 'safe' is not defined" in results["helper-below-tests"]["reason"]


def test_the_demonstration_cells_of_the_master_are_still_skipped(course, results):
    graded = json.loads((course / "autograded" / "cell-magic" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    outputs = {grade_id(c): c.get("outputs") for c in graded["cells"] if grade_id(c)}
    assert outputs["demo"] == []  # not run: no output (its figure and print)
    assert outputs["test_standardize_public"]  # run: the public test prints the standardized data


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_stock_nbgrader_gives_the_same_per_cell_scores(course, results, tmp_path):
    stock = copy_course(course, tmp_path / "stock")
    nbgrader_autograde(stock, "--force", "--log-level=ERROR")
    assert gradebook_scores(stock) == gradebook_scores(course)
