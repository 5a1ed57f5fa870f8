"""The course this repository ships: where it is, and the name of its assignment.

Defined once here for the scripts, the benchmarks and the tests.  ``ROOT`` is the folder above this
file, so a copy of the course that carries scripts/ (as the tests' throw-away courses do) works on
itself, not on the checkout it was copied from.  The Makefile spells the name again as a make variable.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "initialization"
MASTER = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
EXERCISES = ("zeros", "random", "he")  # the exercises' short names, in the notebook's order
