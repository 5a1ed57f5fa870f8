"""End to end through the CLI: code that tries to fool the grader earns nothing it did not earn,
and code that exits or hangs costs only its own exercise, never the batch.

(The sandbox's own attack suite is tests/test_sandbox_adversarial.py; these cases check that
the replay design keeps every comparison out of the student's reach.)
"""

from __future__ import annotations

import pytest

from scripts.student_work import CORRECT, grade_id, solved_cell
from tests.helpers import FULL, assert_graded, course_with, coursekit, release_notebook, solved

# A whole He cell that returns an object equal to everything, inside a dict equal to everything.
EQUAL_TO_EVERYTHING = '''
def initialize_parameters_he(layers_dims):
    class Anything:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __bool__(self): return True
        shape = property(lambda self: (layers_dims[1], layers_dims[0]))
    class AnyDict(dict):
        def __eq__(self, other): return True
        def __contains__(self, key): return True
        def __getitem__(self, key): return Anything()
    return AnyDict({"W1": Anything()})
'''

# Patches NumPy, builtins and the public tests in its own process, then returns wrong weights.
MONKEYPATCH = '''
def initialize_parameters_he(layers_dims):
    import builtins, numpy, numpy.testing, public_tests
    numpy.testing.assert_allclose = lambda *a, **k: None
    numpy.allclose = lambda *a, **k: True
    numpy.array_equal = lambda *a, **k: True
    public_tests.initialize_parameters_he_test = lambda target: print("All tests passed.")
    builtins.AssertionError = type("Harmless", (Exception,), {})
    return {p + str(l): numpy.ones((layers_dims[l], layers_dims[l - 1] if p == "W" else 1))
            for l in range(1, len(layers_dims)) for p in "Wb"}
'''


def with_cell(gid: str, source: str) -> dict:
    nb = solved()
    for cell in nb["cells"]:
        if grade_id(cell) == gid:
            cell["source"] = source
    return nb


def with_body(gid: str, first_lines: str) -> dict:
    """The correct solution of `gid`, preceded inside the loop by `first_lines`."""
    stub = next("".join(c["source"]) for c in release_notebook()["cells"] if grade_id(c) == gid)
    return with_cell(gid, solved_cell(stub, first_lines + "\n" + CORRECT[gid]))


CASES = {
    "honest": (solved, FULL),
    "equal-to-everything": (lambda: with_cell("initialize_parameters_he", EQUAL_TO_EVERYTHING), dict(FULL, he=0.0)),
    "monkeypatches": (lambda: with_cell("initialize_parameters_he", MONKEYPATCH), dict(FULL, he=0.0)),
    "exits": (lambda: with_body("initialize_parameters_zeros", "import os\nos._exit(0)"), dict(FULL, zeros=0.0)),
    "hangs": (lambda: with_body("initialize_parameters_random", "import time\ntime.sleep(600)"), dict(FULL, random=0.0)),
    "kills-itself": (lambda: with_body("initialize_parameters_he", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                     dict(FULL, he=0.0)),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory, template_course):
    course = course_with(tmp_path_factory, template_course, "unfoolable", {student: make() for student, (make, _) in CASES.items()})
    return {r["student"]: r for r in coursekit(course, "--wall-seconds", "4")}


@pytest.mark.parametrize("student", CASES)
def test_each_exercise_earns_only_what_its_function_earns(results, student):
    assert_graded(results[student], CASES[student][1])


def test_a_hanging_function_is_stopped_by_the_timeout_and_said_so(results):
    assert "random" in results["hangs"]["reason"] and "sandbox" in results["hangs"]["reason"]
