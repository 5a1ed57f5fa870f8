"""What a student writes: the code that replaces each stub, a correct version and typical mistakes.

Written out here by hand (not taken from the master notebook) so the tests that use them check the
course against an independent answer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.student_edits import edit_cells, fill_stub  # noqa: E402  (bench/ imports this module too)

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

def solved_cell(stub_source: str, body: str, signature: str = "") -> str:
    """The cell source with the stub line replaced by `body`, indented like the stub.

    `signature` is an optional comment added on the first line of the body, so a test can tell
    whose work a graded notebook shows.
    """
    return fill_stub(stub_source, (f"# {signature}\n" if signature else "") + body)


def solve(nb: dict, bodies: dict[str, str], signature: str = "") -> dict:
    """Fill the solution cells named in `bodies` of the notebook (JSON), as a student would; it, edited."""
    filled = edit_cells(nb, {grade_id: lambda source, body=body: solved_cell(source, body, signature)
                             for grade_id, body in bodies.items()})
    missing = set(bodies) - filled
    assert not missing, f"the notebook has no solution cells {sorted(missing)}"
    return nb


def solve_notebook(path: Path, bodies: dict[str, str], signature: str = "") -> None:
    """Edit the notebook file in place as a student would: fill the solution cells named in `bodies`."""
    nb = solve(json.loads(path.read_text(encoding="utf-8")), bodies, signature)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
