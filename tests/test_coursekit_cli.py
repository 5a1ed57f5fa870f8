"""The command line itself (coursekit/cli.py): what asking for help costs, what --log-level tells."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ASSIGNMENT, copy_course, release_notebook, run_coursekit, submit

# What the grader imports when it grades; asking for help or the version needs none of it.
HEAVY = ("numpy", "nbformat", "nbgrader", "traitlets", "IPython")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["autograde", "--help"]])
def test_help_and_version_import_neither_numpy_nor_nbformat(argv):
    probe = ("import sys\nfrom coursekit.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "coursekit" in proc.stdout


def test_log_level_info_tells_the_operator_what_the_grader_does(template_course, tmp_path):
    course = copy_course(template_course, tmp_path / "course")
    submit(course, "s1", release_notebook(course))
    quiet = run_coursekit(course)
    told = run_coursekit(course, "--force", "--log-level", "INFO")
    assert quiet.returncode == told.returncode == 0, told.stderr
    assert "to grade" not in quiet.stderr  # WARNING, the default: problems only
    assert f"coursekit: {ASSIGNMENT}: 1 submission(s) to grade, " in told.stderr
    assert re.search(r"coursekit: \w+\.ipynb: \d+ graded function\(s\), \d+ test cell\(s\)", told.stderr)
