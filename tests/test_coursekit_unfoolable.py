"""End to end through the CLI: code that tries to fool the grader earns nothing it did not earn,
and code that exits or hangs costs only its own exercise, never the batch.

(The sandbox's own attack suite is tests/test_sandbox_adversarial.py; these cases check that
the replay design keeps every comparison out of the student's reach.)
"""

from __future__ import annotations

import pytest

from tests.helpers import (
    CORRECT,
    FULL,
    assert_graded,
    course_with,
    coursekit,
    grade_id,
    release_notebook,
    solve,
    solved_cell,
)

# A whole standardize cell that returns an object equal to everything, of the right shape.
EQUAL_TO_EVERYTHING = '''
def standardize(rows):
    class Anything:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __bool__(self): return True
        shape = property(lambda self: (len(rows), len(rows[0])))
        def mean(self, *args, **kwargs): return self
        def std(self, *args, **kwargs): return self
        def __getitem__(self, key): return self
    return Anything()
'''

# Patches NumPy, builtins and the public tests in its own process, then returns wrong values.
MONKEYPATCH = '''
def standardize(rows):
    import builtins, numpy, numpy.testing, scaling_checks
    numpy.testing.assert_allclose = lambda *a, **k: None
    numpy.allclose = lambda *a, **k: True
    numpy.array_equal = lambda *a, **k: True
    numpy.all = lambda *a, **k: True
    scaling_checks.standardize_test = lambda target: print("standardize: all tests passed.")
    builtins.AssertionError = type("Harmless", (Exception,), {})
    return numpy.ones((len(rows), len(rows[0])))
'''


def with_cell(release: dict, gid: str, source: str) -> dict:
    nb = solve(release, CORRECT)
    for cell in nb["cells"]:
        if grade_id(cell) == gid:
            cell["source"] = source
    return nb


def with_body(release: dict, gid: str, first_lines: str) -> dict:
    """The correct solution of `gid`, preceded in the function's body by `first_lines`."""
    stub = next("".join(c["source"]) for c in release["cells"] if grade_id(c) == gid)
    return with_cell(release, gid, solved_cell(stub, first_lines + "\n" + CORRECT[gid]))


# student: (their notebook, made from the release; the points of each exercise)
CASES = {
    "honest": (lambda release: solve(release, CORRECT), FULL),
    "equal-to-everything": (lambda release: with_cell(release, "standardize", EQUAL_TO_EVERYTHING),
                            dict(FULL, standardize=0.0)),
    "monkeypatches": (lambda release: with_cell(release, "standardize", MONKEYPATCH), dict(FULL, standardize=0.0)),
    "exits": (lambda release: with_body(release, "center", "import os\nos._exit(0)"), dict(FULL, center=0.0)),
    "hangs": (lambda release: with_body(release, "add_noise", "import time\ntime.sleep(600)"), dict(FULL, noise=0.0)),
    "kills-itself": (lambda release: with_body(release, "standardize", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                     dict(FULL, standardize=0.0)),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory, template_course):
    course = course_with(tmp_path_factory, template_course, "unfoolable", {student: make(release_notebook(template_course))
                                                                                 for student, (make, _) in CASES.items()})
    return {r["student"]: r for r in coursekit(course, "--wall-seconds", "4")}


@pytest.mark.parametrize("student", CASES)
def test_each_exercise_earns_only_what_its_function_earns(results, student):
    assert_graded(results[student], CASES[student][1])


def test_a_hanging_function_is_stopped_by_the_timeout_and_said_so(results):
    assert "test_noise_public" in results["hangs"]["reason"] and "sandbox" in results["hangs"]["reason"]
