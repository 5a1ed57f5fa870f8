"""Edit a release notebook the way a student does: fill a solution cell's stub, or rewrite the cell.

One place for the demo class (scripts/make_demo_class.py), the bench class (bench/make_class.py)
and the tests' students (tests/student_work.py).  Works on nbformat notebooks and on plain JSON.
"""

from __future__ import annotations

from typing import Callable, Mapping

STUB_COMMENT = "# YOUR CODE HERE"
STUB = "raise NotImplementedError()"


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
    edited = set()
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in edits:
            source = cell["source"]
            cell["source"] = edits[grade_id](source if isinstance(source, str) else "".join(source))
            edited.add(grade_id)
    return edited
