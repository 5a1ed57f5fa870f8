"""The command line itself (coursekit/cli.py): what it costs to ask it for help."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What the grader imports when it grades; asking for help or the version needs none of it.
HEAVY = ("numpy", "nbformat", "nbgrader", "traitlets", "IPython")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["autograde", "--help"]])
def test_help_and_version_import_neither_numpy_nor_nbformat(argv):
    probe = ("import sys\nfrom coursekit.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "coursekit" in proc.stdout
