"""What a student writes, and how: the code that replaces each stub (a correct version), and the
edits that put code into a release notebook the way a student does, by filling a solution cell's
stub or rewriting the cell.

One place for the demo class (scripts/make_demo_class.py), the bench class (scripts/make_class.py,
scripts/fuzz.py) and the tests' students.  The correct answers are written out here by hand (not
taken from the master notebook), so the tests that use them check the course against an
independent answer.  Works on nbformat notebooks and on plain JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping

STUB_COMMENT = "# YOUR CODE HERE"
STUB = "raise NotImplementedError()"

# Lines that replace the stub inside `for l in range(1, len(layers_dims)):` of each exercise.
CORRECT = {
    "initialize_parameters_zeros": (
        'parameters["W" + str(l)] = np.zeros((layers_dims[l], layers_dims[l - 1]))\n'
        'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))'
    ),
    "initialize_parameters_random": (
        'parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * 10\n'
        'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))'
    ),
    "initialize_parameters_he": (
        'parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1])'
        " * np.sqrt(2 / layers_dims[l - 1])\n"
        'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))'
    ),
}


def grade_id(cell: Mapping) -> str | None:
    """The cell's nbgrader grade id, or None (also when its nbgrader metadata is not a mapping)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, Mapping) else None


def index_of(nb: Mapping, gid: str) -> int:
    """The position of the cell with grade id ``gid`` in the notebook."""
    return next(i for i, c in enumerate(nb["cells"]) if grade_id(c) == gid)


def fill_stub(source: str, code: str, keep_comment: bool = True) -> str:
    """``source`` with its ``raise NotImplementedError()`` line replaced by ``code``, indented like it.

    With ``keep_comment=False`` the ``# YOUR CODE HERE`` line above the stub goes too.
    """
    lines = source.split("\n")
    found = [i for i, line in enumerate(lines) if line.strip() == STUB]
    if len(found) != 1:
        raise ValueError(f"expected one '{STUB}' stub line, found {len(found)} in cell:\n{source}")
    (index,) = found
    start = index
    if not keep_comment:
        if index == 0 or lines[index - 1].strip() != STUB_COMMENT:
            raise ValueError(f"no '{STUB_COMMENT}' line above the stub in cell:\n{source}")
        start = index - 1
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines[start:index + 1] = [indent + line if line else line for line in code.split("\n")]
    return "\n".join(lines)


def edit_cells(nb: Mapping, edits: Mapping[str, Callable[[str], str]]) -> set[str]:
    """Apply ``edits[grade_id](source)`` to each cell with that nbgrader grade id; the ids edited."""
    edited: set[str] = set()
    for cell in nb["cells"]:
        gid = grade_id(cell)
        if gid is not None and gid in edits:
            source = cell["source"]
            cell["source"] = edits[gid](source if isinstance(source, str) else "".join(source))
            edited.add(gid)
    return edited


def solved_cell(stub_source: str, body: str, signature: str = "") -> str:
    """The cell source with the stub line replaced by `body`, indented like the stub.

    `signature` is an optional comment added on the first line of the body, so a test can tell
    whose work a graded notebook shows.
    """
    return fill_stub(stub_source, (f"# {signature}\n" if signature else "") + body)


def solve(nb: dict, bodies: Mapping[str, str], signature: str = "") -> dict:
    """Fill the solution cells named in `bodies` of the notebook (JSON), as a student would; it, edited."""
    def filler(body: str) -> Callable[[str], str]:
        return lambda source: solved_cell(source, body, signature)

    filled = edit_cells(nb, {gid: filler(body) for gid, body in bodies.items()})
    missing = set(bodies) - filled
    if missing:
        raise ValueError(f"the notebook has no solution cells {sorted(missing)}")
    return nb


def solve_notebook(path: Path, bodies: Mapping[str, str], signature: str = "") -> None:
    """Edit the notebook file in place as a student would: fill the solution cells named in `bodies`."""
    nb = solve(json.loads(path.read_text(encoding="utf-8")), bodies, signature)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
