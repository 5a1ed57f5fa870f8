"""release/ is generated from source/ by nbgrader, stays in sync, and gives nothing away."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from scripts.course import ASSIGNMENT, EXERCISES, MASTER, RELEASE, ROOT
from scripts.courses import generate_assignment, new_course
from scripts.run_master import cells_by_id, execute
from tests.helpers import HIDDEN

HELPERS = ["init_utils.py", "public_tests.py", "datasets/circles.h5"]
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


@pytest.mark.parametrize("folder", ["source", "release"])
@pytest.mark.parametrize("helper", HELPERS)
def test_assignment_ships_byte_identical_helpers(folder, helper):
    copy = ROOT / folder / ASSIGNMENT / helper
    assert copy.read_bytes() == (ROOT / helper).read_bytes(), f"{copy} drifted: run `make release`"


def normalized(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return {"cells": [(c["cell_type"], "".join(c["source"]), c.get("metadata", {}).get("nbgrader"))
                      for c in nb["cells"]]}


def test_release_is_what_nbgrader_generates_from_source(tmp_path, course_env):
    course = new_course(tmp_path / "course")
    generate_assignment(course, "--log-level=WARN", env=course_env)
    assert normalized(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb") == normalized(RELEASE), \
        "release/ is out of date: run `make release` and commit it"


def assert_blocks_absent_from_release(marker: re.Pattern, expected_blocks: int, min_line: int) -> None:
    """Every line (of at least ``min_line`` characters) inside the master's marked blocks is absent."""
    release_text = RELEASE.read_text(encoding="utf-8")
    blocks = [body for c in nbformat.read(MASTER, 4).cells for body in marker.findall(c.source)]
    assert len(blocks) == expected_blocks
    for body in blocks:
        for line in (l.strip() for l in body.splitlines()):
            if len(line) >= min_line:
                assert json.dumps(line)[1:-1] not in release_text, line


def test_release_contains_no_solution_text():
    assert_blocks_absent_from_release(SOLUTION, expected_blocks=3, min_line=1)
    assert "BEGIN SOLUTION" not in RELEASE.read_text(encoding="utf-8")


def test_release_contains_no_hidden_test_text():
    # Short lines such as ")" or "}," occur everywhere; every longer hidden line must be gone.
    assert_blocks_absent_from_release(HIDDEN, expected_blocks=3, min_line=13)
    assert "HIDDEN TESTS" not in RELEASE.read_text(encoding="utf-8")


def test_release_stubs_raise_not_implemented():
    release = cells_by_id(nbformat.read(RELEASE, 4))
    for exercise in EXERCISES:
        source = release[f"initialize_parameters_{exercise}"].source
        assert "# YOUR CODE HERE\n        raise NotImplementedError()" in source


@pytest.fixture(scope="module")
def executed_release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    shutil.copytree(RELEASE.parent, folder, dirs_exist_ok=True)
    return cells_by_id(execute(folder / RELEASE.name, allow_errors=True))


def errors(cell) -> list[str]:
    return [o.ename for o in cell.outputs if o.output_type == "error"]


def test_unsolved_release_fails_cleanly_at_each_exercise(executed_release):
    for exercise in EXERCISES:
        assert errors(executed_release[f"test_{exercise}_public"]) == ["NotImplementedError"]
        assert errors(executed_release[f"train_{exercise}"]) == ["NotImplementedError"]


def test_unsolved_release_still_loads_data_and_defines_model(executed_release):
    for grade_id in ("setup", "load_data", "model"):
        assert errors(executed_release[grade_id]) == []


def validate(path: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["nbgrader", "validate", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_nbgrader_validate_passes_on_master(course_env):
    result = validate(MASTER, course_env)
    assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout + result.stderr


def test_nbgrader_validate_fails_on_unsolved_release_with_the_reason(course_env):
    result = validate(RELEASE, course_env)
    assert "failed" in result.stdout.lower() and "NotImplementedError" in result.stdout, result.stdout
