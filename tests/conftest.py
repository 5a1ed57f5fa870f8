"""Shared fixtures: paths of the course and the environment nbgrader needs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "initialization"
MASTER = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
VENV_BIN = Path(sys.executable).parent

# Tests import the course's own modules (init_utils, public_tests, scripts.run_master, coursekit).
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def course_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses: the venv's bin/ first on PATH (nbgrader runs `alembic`)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env
