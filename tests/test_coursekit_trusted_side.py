"""Attacks on the grader's own (trusted) side: whatever a submission sends back or writes in its
notebook, the grading process stays within its bounds, learns nothing the submission should not
have, and a submission's content never leaves it ungraded.

The first half talks to the sandbox and the replay directly (fast); the second grades one course
of hostile notebooks through the CLI, and checks the gradebook rows they replace.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import nbformat
import pytest

from coursekit import score
from coursekit.sandbox import Call, Cell, Limits, Sandbox
from tests.helpers import (
    ASSIGNMENT,
    FULL,
    assert_graded,
    copy_course,
    coursekit,
    gradebook_scores,
    index_of,
    solved,
    submit,
)

QUICK = Limits(wall_seconds=5, cpu_seconds=3)
SECRET = [31, 41, 59, 26]  # the arguments of a "hidden" call


@pytest.fixture(scope="module")
def box():
    with Sandbox() as sandbox:
        yield sandbox


def forge(record: dict, blob: bytes = b"") -> str:
    """Submission code that writes `record` on the run's channel as the current call's result."""
    return textwrap.dedent(f"""
        import json, os, struct
        def forged(*args):
            head = json.dumps({record!r}).encode()
            os.write(3, struct.pack("<2sII", b"CK", len(head), {len(blob)}) + head + {blob!r})
            return 0
        """)


def test_an_array_referred_to_many_times_voids_the_run_instead_of_multiplying(box):
    record = {"kind": "call", "index": 0, "status": "ok", "value": [{"$nd": 0}] * 10_000, "error": None,
              "args_after": None, "stdout": "", "stderr": "", "arrays": [["<f8", [8192], 0, 65536]]}
    result = box.run(forge(record, b"\0" * 65536), [Call("forged")], workdir_files=None, limits=QUICK)
    assert result.reason == "malformed result from the sandbox: an array is referred to more than once"
    assert [c.status for c in result.calls] == ["not_run"]


@pytest.mark.parametrize("dtype", ["<b16", "<f3", "|O8", "<c16", "<M8"])
def test_a_forged_dtype_is_a_malformed_result_not_a_grader_error(box, dtype):
    record = {"kind": "call", "index": 0, "status": "ok", "value": {"$nd": 0}, "error": None,
              "args_after": None, "stdout": "", "stderr": "", "arrays": [[dtype, [1], 0, 16]]}
    result = box.run(forge(record, b"\0" * 16), [Call("forged")], workdir_files=None, limits=QUICK)
    assert result.reason.startswith("malformed result from the sandbox: array dtype")
    assert [c.status for c in result.calls] == ["not_run"]


def test_a_lone_surrogate_in_a_message_comes_back_storable(box):
    result = box.run("def f():\n    raise ValueError('bad \\ud800 text')\n", [Call("f")], workdir_files=None,
                     limits=QUICK)
    assert result.calls[0].error == "ValueError: bad ? text"
    result.calls[0].error.encode("utf-8")


LOOK_FOR_SECRETS = textwrap.dedent("""
    import gc, sys
    def snoop(*args):
        '''Search what this process holds: the frames below this one, and live objects.
        The patterns are built here so that this code's own constants do not match.'''
        secret = "[" + ", ".join(str(n + 1) for n in (30, 40, 58, 25)) + "]"
        last_run = "".join(["'timed", "_out': "])  # (a + b would be folded into a constant)
        seen = []
        frame = sys._getframe().f_back
        while frame is not None:
            seen.append(repr(frame.f_locals))
            frame = frame.f_back
        for obj in gc.get_objects():
            if obj is not seen:
                try:
                    seen.append(repr(obj)[:100000])
                except Exception:
                    pass
        text = "\\n".join(seen)
        return {"secret": secret in text, "last run": last_run in text}
    """)


def test_the_child_holds_no_later_secret_call_and_no_earlier_run(box):
    box.run("x = 1", [Call("missing")], workdir_files=None, limits=QUICK)  # a run before this one
    result = box.run(LOOK_FOR_SECRETS, [Call("snoop"), Call("snoop", (SECRET,))], workdir_files=None,
                     limits=Limits(wall_seconds=20, cpu_seconds=10))
    before, during = (c.value for c in result.calls)
    assert before == {"secret": False, "last run": False}
    assert during["secret"] is True  # the check finds the arguments once they are the call's own


def test_a_public_tests_calls_may_travel_together_but_a_secret_one_never_joins_them(box):
    result = box.run_steps([Cell("c", LOOK_FOR_SECRETS), Call("snoop", (), secret=False),
                            Call("snoop", ([1, 2],), secret=False), Call("snoop", (SECRET,))],
                           workdir_files=None, limits=Limits(wall_seconds=20, cpu_seconds=10))
    assert [c.value["secret"] for c in result.calls] == [False, False, True]


def test_replay_stops_a_test_cell_that_runs_too_long_in_the_grader():
    outputs = score.run_cell("while True:\n    pass\n", {}, "<slow>", seconds=0.5)
    assert outputs[-1].ename == "ReplayTimeout" and "0.5 s in the grader" in outputs[-1].evalue


def test_replay_keeps_a_bounded_part_of_what_a_test_cell_prints():
    outputs = score.run_cell("print('x' * 10_000_000)\n'y' * 10_000_000\n", {}, "<loud>")
    assert len(outputs[0].text) < score.OUTPUT_CHARS + 100 and outputs[0].text.endswith("(output cut by coursekit)\n")
    assert len(outputs[1].data["text/plain"]) == score.OUTPUT_CHARS


def test_a_grading_process_cannot_allocate_beyond_its_own_limit():
    code = ("from coursekit.pipeline import WORKER_MEMORY_BYTES, _limit_worker\n"
            "_limit_worker()\nimport numpy\n"
            "try:\n    numpy.ones(WORKER_MEMORY_BYTES // 8 + 1)\nexcept MemoryError:\n    print('MemoryError')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "MemoryError", done.stderr[-2000:]


# --------------------------------------------------------------------------- through the CLI


def huge_printed_value(nb: dict) -> dict:
    """center's first result is a 600 000-character string, which the public test cell prints
    (its later results are right, so the exercise still passes)."""
    cell = nb["cells"][index_of(nb, "center")]
    cell["source"] = "calls = [0]\n" + cell["source"].replace(
        "    return X", "    calls[0] += 1\n    if calls[0] == 1:\n        return 'x' * 600_000\n    return X")
    return nb


def oversized_cell(nb: dict) -> dict:
    nb["cells"].append(nbformat.v4.new_code_cell("# " + "x" * 150_000))
    return nb


def too_much_code(nb: dict) -> dict:
    nb["cells"] += [nbformat.v4.new_code_cell("# " + "x" * 95_000) for _ in range(11)]
    return nb


def deeply_nested_metadata(nb: dict) -> dict:
    deep: dict = {}
    for _ in range(100):
        deep = {"d": deep}
    nb["metadata"]["deep"] = deep
    return nb


def wrongly_typed_metadata(nb: dict) -> dict:
    nb["cells"][index_of(nb, "standardize")]["metadata"]["nbgrader"] = ["not", "a", "dict"]
    nb["cells"][index_of(nb, "test_center_public")]["metadata"]["nbgrader"]["grade_id"] = ["a", "list"]
    return nb


def lone_surrogates(nb: dict) -> dict:
    nb["cells"].insert(0, nbformat.v4.new_markdown_cell("caf\ud800 notes"))
    cell = nb["cells"][index_of(nb, "standardize")]
    cell["source"] = cell["source"].replace("    return (X", "    raise ValueError('\\ud800')\n    return (X")
    return nb


CASES = {
    "huge-printed-value": (huge_printed_value, FULL, ""),
    "oversized-cell": (oversized_cell, FULL, "150,002 characters of code, more than the 100,000"),
    "too-much-code": (too_much_code, dict.fromkeys(FULL, 0.0), "more than 1,000,000 characters of code"),
    "deeply-nested": (deeply_nested_metadata, dict.fromkeys(FULL, 0.0), "nested deeper than 64 levels"),
    "wrongly-typed-metadata": (wrongly_typed_metadata, FULL, "nbgrader metadata of the wrong shape"),
    "lone-surrogates": (lone_surrogates, dict(FULL, standardize=0.0), "ValueError: ?"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, template_course):
    base = tmp_path_factory.mktemp("trusted-side")
    course = copy_course(template_course, base / "course")
    for student in CASES:  # first a correct submission from everyone: 9/9 in the gradebook
        submit(course, student, solved(template_course))
    assert {r["score"] for r in coursekit(course)} == {9.0}
    for student, (make, _, _) in CASES.items():
        submit(course, student, make(solved(template_course)))
    return course, {r["student"]: r for r in coursekit(course, "--force")}


@pytest.mark.parametrize("student", CASES)
def test_hostile_content_is_graded_with_a_reason_and_replaces_the_old_rows(graded, student):
    course, results = graded
    _, expected, note = CASES[student]
    assert_graded(results[student], expected, note)
    scores = gradebook_scores(course)
    assert sum(scores[(student, cell)] for cell in results[student]["cells"]) == sum(expected.values())


def test_the_graded_notebook_of_a_huge_printed_value_stays_small(graded):
    course, _ = graded
    graded_nb = course / "autograded" / "huge-printed-value" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert graded_nb.stat().st_size < 400_000
    assert "(output cut by coursekit)" in graded_nb.read_text()
