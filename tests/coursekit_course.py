"""Throw-away copies of the course for the coursekit tests, and ways to read their results.

A template course (config, master, release, a fresh gradebook made by the real
`nbgrader generate_assignment`) is built once per session; each test grades in its own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nbgrader.api import Gradebook

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "initialization"
sys.path.insert(0, str(ROOT / "bench"))
import make_class  # noqa: E402  (the class generator under test is also the tests' supplier of work)


def course_env() -> dict[str, str]:
    """nbgrader needs the venv's bin/ on PATH; the course's own gradebook, not an override."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("COURSEKIT_GRADEBOOK", None)
    env.pop("COURSEKIT_EXCHANGE", None)
    return env


def build_template(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "source" / ASSIGNMENT, folder / "source" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force",
                    "--log-level=WARN"], cwd=folder, env=course_env(), check=True)
    return folder


_TEMPLATE: list[Path] = []


def shared_template(tmp_path_factory) -> Path:
    """One template course for the whole test session (generate_assignment takes seconds)."""
    if not _TEMPLATE:
        _TEMPLATE.append(build_template(tmp_path_factory.mktemp("coursekit") / "template"))
    return _TEMPLATE[0]


def copy_course(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def submit(course: Path, student: str, notebook: dict | bytes, timestamp: str | None = make_class.TIMESTAMP) -> Path:
    """Place a submission as the exchange would: submitted/<student>/initialization/."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ASSIGNMENT}.ipynb"
    path.write_bytes(notebook if isinstance(notebook, bytes) else json.dumps(notebook).encode())
    if timestamp:
        (folder / "timestamp.txt").write_text(timestamp + "\n")
    return path


def release_notebook() -> dict:
    return json.loads((ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text(encoding="utf-8"))


def coursekit(course: Path, *args: str, check: bool = True, timeout: float = 600) -> list[dict]:
    """Run the real CLI (`python -m coursekit autograde initialization --json ...`); its JSON lines."""
    proc = subprocess.run([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json", *args],
                          cwd=course, env=course_env(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def gradebook_scores(course: Path) -> dict[tuple[str, str], float | None]:
    """{(student, grade cell): auto_score} for every submission in the course's gradebook."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "weight-init") as gb:
        return {(sub.student.id, grade.name): grade.auto_score
                for sub in gb.find_assignment(ASSIGNMENT).submissions
                for nb in sub.notebooks for grade in nb.grades}


def expected_scores(manifest: dict) -> dict[tuple[str, str], float]:
    return {(student, cell): score for student, entry in manifest.items()
            for cell, score in entry["expected"].items()}
