"""`coursekit check ASSIGNMENT` (issue 19, "Instructors can check their own course").

The real command runs on this course and on tests/general_course/ (`textstats`; `weather`, whose
notebook reads a data file; `gallery`, whose tests read Matplotlib's axes) and must find every cell
in agreement; on a course whose configuration makes coursekit grade differently on purpose (a
per-cell time limit below what a correct answer needs) it must say which cells differ, why, and
exit 1.  The variants themselves are checked without grading: what each one changes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coursekit.check import Variant, solution_text, variants
from scripts.course import ROOT
from tests.helpers import nbgrader_env

GENERAL = Path(__file__).resolve().parent / "general_course"
SUMMARY = re.compile(r"^check: (\d+)/(\d+) cells agree on (\d+) variants$", re.M)
DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION")


def run_check(course: Path, assignment: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursekit", "check", assignment, "--course-dir", str(course), *args],
                          env=nbgrader_env(), capture_output=True, text=True, timeout=1500)


def cell(source: str, gid: str | None = None, **meta: object) -> dict:
    nbgrader = {"grade_id": gid, "schema_version": 3, "locked": False, "grade": False, "solution": False, **meta}
    return {"id": gid or "x", "cell_type": "code", "execution_count": None, "outputs": [], "source": source,
            "metadata": {"nbgrader": nbgrader} if gid else {}}


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


MASTER_SOLUTION = ("import math\n\n\ndef area(r):\n    ### BEGIN SOLUTION\n    return math.pi * r ** 2\n"
                   "    ### END SOLUTION\n\n\ndef double(x):\n    return 2 * x\n")
STUB = "import math\n\n\ndef area(r):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n\ndef double(x):\n    return 2 * x\n"
TEST = "assert abs(area(1) - 3.14159) < 1e-4\n"


def small_variants() -> dict[str, Variant]:
    master = notebook(cell(MASTER_SOLUTION, "area", solution=True), cell(TEST, "test_area", grade=True, points=1))
    release = notebook(cell(STUB, "area", solution=True), cell(TEST, "test_area", grade=True, points=1))
    return {v.name: v for v in variants({"nb": release}, {"nb": master}, DELIMITERS)}


def run_all(nb: dict) -> dict:
    """Run a notebook's code cells but its tests, top to bottom in one namespace (plain Python)."""
    space: dict = {}
    for c in nb["cells"]:
        if not c["metadata"].get("nbgrader", {}).get("grade"):
            exec(c["source"], space)
    return space


def test_variants_cover_solution_release_stub_styles_and_wrong_values():
    found = small_variants()
    assert list(found) == ["solution", "release", "stub-area", "helpers", "reordered", "wrong-area", "wrong-double"]
    assert "BEGIN SOLUTION" not in json.dumps(found["solution"].notebooks)
    assert run_all(found["solution"].notebooks["nb"])["area"](1) == pytest.approx(3.14159, abs=1e-5)
    for name in ("helpers", "reordered"):  # another style, the same answers
        space = run_all(found[name].notebooks["nb"])
        assert space["area"](2) == pytest.approx(4 * 3.14159, abs=1e-4) and space["double"](3) == 6, name
    helpers = found["helpers"].notebooks["nb"]["cells"]
    assert len(helpers) == 3 and "def _area_impl(" in helpers[0]["source"] and "nbgrader" not in helpers[0]["metadata"]
    reordered = found["reordered"].notebooks["nb"]["cells"][0]["source"]
    assert reordered.index("def area(") < reordered.index("def _area_impl(") and reordered.rstrip().endswith("import math")
    wrong = run_all(found["wrong-area"].notebooks["nb"])
    assert wrong["area"](1) != pytest.approx(3.14159, abs=1e-4) and wrong["double"](3) == 6
    assert run_all(found["wrong-double"].notebooks["nb"])["double"](3) != 6
    with pytest.raises(NotImplementedError):
        run_all(found["stub-area"].notebooks["nb"])["area"](1)


def test_solution_text_drops_only_the_delimiter_lines():
    assert solution_text(MASTER_SOLUTION, DELIMITERS) == MASTER_SOLUTION.replace(
        "    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION\n", "")


def test_a_cell_with_magics_keeps_its_text_and_the_notes_say_why():
    magic = "%matplotlib inline\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    notes: list[str] = []
    found = variants({"nb": notebook(cell("%matplotlib inline\ndef f():\n    raise NotImplementedError()\n", "f",
                                          solution=True))},
                     {"nb": notebook(cell(magic, "f", solution=True))}, DELIMITERS, notes)
    assert [v.name for v in found] == ["solution", "release", "stub-f"]
    assert any("helpers" in n for n in notes) and any("wrong-value variant of f" in n for n in notes), notes


def _agreement(done: subprocess.CompletedProcess) -> tuple[int, int, int]:
    found = SUMMARY.findall(done.stdout)
    assert found, done.stdout[-3000:] + done.stderr[-3000:]
    return tuple(map(int, found[-1]))  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("course, assignment, cells", [
    (ROOT, "initialization", 6),
    (GENERAL, "textstats", 9),
    (GENERAL, "weather", 3),  # functions and a setup cell that read a CSV beside the notebook
    (GENERAL, "gallery", 2),  # plot-heavy: demonstration figures, tests that read the current axes
])
def test_check_agrees_on_every_cell(course, assignment, cells):
    done = run_check(course, assignment)
    agree, total, count = _agreement(done)
    assert (agree, done.returncode) == (total, 0), done.stdout[-6000:] + done.stderr[-3000:]
    assert total == cells * count and count >= 8, done.stdout[-3000:]
    plan = done.stdout.split("\n\n")[0]
    assert re.search(r"^  test_\w+ +(replay|sandbox) +\S", plan, re.M), plan


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_check_names_the_cells_that_differ_and_exits_1(tmp_path):
    """The instructor set coursekit's per-cell limit (1 s) below what the answer needs (2 s):
    nbgrader, with its own limit, gives the point; coursekit gives 0.  check must say so."""
    course = tmp_path / "course"
    (course / "source" / "slow").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        'c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = "slow-course"\n'
        'c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}\n'
        "c.CourseKit.wall_seconds = 1\n")
    solution = "import time\n\n\ndef answer():\n    ### BEGIN SOLUTION\n    time.sleep(2)\n    return 42\n    ### END SOLUTION\n"
    master = notebook(cell(solution, "answer", solution=True),
                      cell("assert answer() == 42\n", "test_answer", grade=True, points=1, locked=True))
    (course / "source" / "slow" / "slow.ipynb").write_text(json.dumps(master))
    done = run_check(course, "slow")
    agree, total, _ = _agreement(done)
    assert done.returncode == 1 and agree < total, done.stdout[-3000:]
    assert re.search(r"slow/test_answer +\d+/\d+ agree +DIFFER", done.stdout), done.stdout[-3000:]
    assert re.search(r"solution: nbgrader 1, coursekit 0", done.stdout), done.stdout[-3000:]
