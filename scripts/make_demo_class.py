"""Build the demo class in submitted/ from the student release.

    python -m scripts.make_demo_class

Each demo student starts from release/initialization/initialization.ipynb, exactly
as a student receives it (nbgrader metadata included), and edits only the three
solution cells, the way real students do: usually by replacing the
``# YOUR CODE HERE`` stub, sometimes by rewriting the whole function.  Rerun this
after `make release` so the demo class matches the current release.  The
expected scores of every student are written down in tests/test_nbgrader_workflow.py.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field

import nbformat

from scripts.course import ASSIGNMENT, RELEASE, ROOT
from scripts.student_work import CORRECT, edit_cells, fill_stub

SUBMITTED = ROOT / "submitted"


@dataclass
class DemoStudent:
    """What one demo student wrote: stub replacements and whole-cell rewrites by grade id."""

    description: str
    stub: dict[str, str] = field(default_factory=dict)
    cell: dict[str, str] = field(default_factory=dict)
    not_json: bool = False


STUDENTS: dict[str, DemoStudent] = {
    "demo-all-correct": DemoStudent("all three functions as the solution writes them", stub=CORRECT),
    "demo-different-style": DemoStudent(
        "all correct, written differently (zip over layer pairs, f-strings, ** 0.5)",
        cell={
            "initialize_parameters_zeros": '''\
def initialize_parameters_zeros(layers_dims):
    params = {}
    for l, (n_prev, n) in enumerate(zip(layers_dims[:-1], layers_dims[1:]), start=1):
        params[f"W{l}"] = np.zeros(shape=(n, n_prev))
        params[f"b{l}"] = np.zeros(shape=(n, 1))
    return params''',
            "initialize_parameters_random": '''\
def initialize_parameters_random(layers_dims):
    np.random.seed(3)
    params = {}
    for l, (n_prev, n) in enumerate(zip(layers_dims[:-1], layers_dims[1:]), start=1):
        params[f"W{l}"] = 10.0 * np.random.randn(n, n_prev)
        params[f"b{l}"] = np.zeros(shape=(n, 1))
    return params''',
            "initialize_parameters_he": '''\
def initialize_parameters_he(layers_dims):
    np.random.seed(3)
    params = {}
    for l, (n_prev, n) in enumerate(zip(layers_dims[:-1], layers_dims[1:]), start=1):
        params[f"W{l}"] = np.random.randn(n, n_prev) * (2.0 / n_prev) ** 0.5
        params[f"b{l}"] = np.zeros(shape=(n, 1))
    return params''',
        }),
    "demo-zeros-layers-dims-1": DemoStudent(
        "zeros uses layers_dims[1] rows for every layer; random and He correct",
        stub={**CORRECT, "initialize_parameters_zeros": """\
parameters["W" + str(l)] = np.zeros((layers_dims[1], layers_dims[l - 1]))
parameters["b" + str(l)] = np.zeros((layers_dims[1], 1))"""}),
    "demo-he-xavier": DemoStudent(
        "He scaled with Xavier's sqrt(1 / n_prev); zeros and random correct",
        stub={**CORRECT, "initialize_parameters_he": """\
parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * np.sqrt(1 / layers_dims[l - 1])
parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))"""}),
    "demo-random-no-seed": DemoStudent(
        "random deletes the given np.random.seed(3) line; zeros and He correct",
        stub={k: v for k, v in CORRECT.items() if k != "initialize_parameters_random"},
        cell={"initialize_parameters_random": '''\
def initialize_parameters_random(layers_dims):
    """Return W1..WL drawn from N(0, 1) times 10, and b1..bL all 0.

    layers_dims -- layer sizes, input first: [n0, n1, ..., nL]
    """
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * 10
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters'''}),
    "demo-copied-public-answers": DemoStudent(
        "random returns the public test's expected arrays: passes the public test, not the hidden one",
        stub={**CORRECT, "initialize_parameters_random": """\
from public_tests import EXPECTED_RANDOM  # the answers the public test wants
parameters["W" + str(l)] = np.array(EXPECTED_RANDOM[tuple(layers_dims)]["W" + str(l)])
parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))"""}),
    "demo-untouched": DemoStudent("handed in the release without changing anything"),
    "demo-not-json": DemoStudent("the file was cut off while saving: not valid JSON", not_json=True),
}


def student_notebook(student: DemoStudent) -> nbformat.NotebookNode:
    """The release notebook with this student's edits applied."""
    nb = nbformat.read(RELEASE, as_version=4)
    stubs = {grade_id: lambda source, code=code: fill_stub(source, code, keep_comment=False)
             for grade_id, code in student.stub.items()}
    rewrites = {grade_id: lambda source, code=code: code for grade_id, code in student.cell.items()}
    edit_cells(nb, {**stubs, **rewrites})  # a rewritten cell replaces the stub filling
    return nb


def main() -> int:
    for student_id, student in STUDENTS.items():
        folder = SUBMITTED / student_id / ASSIGNMENT
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        path = folder / f"{ASSIGNMENT}.ipynb"
        text = nbformat.writes(student_notebook(student))
        if student.not_json:
            text = text[: len(text) // 3]  # a save that stopped a third of the way through
        path.write_text(text, encoding="utf-8")
        print(f"{path.relative_to(ROOT)}: {student.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
