"""Execute the master notebook with a real Jupyter kernel and print what matters.

    python -m scripts.run_master [--save PATH] [--figures DIR]

Prints every training's cost lines and accuracies, the numbers the lesson's
explanations rest on (signal sizes, gradient norms, the deep network's spreads),
the closing comparison table, and how long the kernel took to run the notebook top
to bottom (the figure README quotes).  With --figures, also writes the figures
README shows (he_boundary.png, deep_network.png, costs.png, saturating.png) into DIR, taken from
the executed notebook.  Exits non-zero if any cell raises.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from scripts.course import MASTER

TRAINING_CELLS = ("train_zeros", "train_random", "train_he", "train_small", "train_one")
EVIDENCE_CELLS = ("symmetry_demo", "saturation_demo", "small_signal", "deep_spreads", "pytorch_default_check",
                  "deep_histograms", "deep_saturating", "explore_answer", "results_table")
# README's figures: file name -> grade id of the cell that draws it (its first PNG).
FIGURES = {"he_boundary.png": "plot_he", "deep_network.png": "deep_spreads", "costs.png": "plot_compare",
           "saturating.png": "deep_saturating"}


def execute(path: Path, allow_errors: bool = False, timeout: int = 300) -> nbformat.NotebookNode:
    """Run every cell of ``path`` in a fresh python3 kernel whose cwd is the notebook's folder."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def cells_by_id(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """Map nbgrader grade_id -> cell."""
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.get("metadata", {})}


def cell_text(nb: nbformat.NotebookNode, grade_id: str) -> str:
    """All stream output of the cell with this nbgrader grade id."""
    cell = cells_by_id(nb)[grade_id]
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def first_png(nb: nbformat.NotebookNode, grade_id: str) -> bytes:
    """The first PNG the cell with this grade id displayed."""
    cell = cells_by_id(nb)[grade_id]
    return next(base64.b64decode(o["data"]["image/png"]) for o in cell.get("outputs", [])
                if "image/png" in o.get("data", {}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="also write the executed notebook here")
    parser.add_argument("--figures", type=Path, help="also write README's figures into this folder")
    args = parser.parse_args()

    start = time.perf_counter()
    nb = execute(MASTER)
    seconds = time.perf_counter() - start
    for grade_id in TRAINING_CELLS + EVIDENCE_CELLS:
        print(f"--- {grade_id}\n{cell_text(nb, grade_id)}")
    print(f"Master notebook executed top to bottom in {seconds:.1f} s (kernel start included).")
    if args.save:
        nbformat.write(nb, args.save)
    if args.figures:
        for name, grade_id in FIGURES.items():
            (args.figures / name).write_bytes(first_png(nb, grade_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
