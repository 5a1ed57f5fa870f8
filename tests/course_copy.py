"""Temporary courses: the one place tests (and bench/) build, generate and copy a course folder,
and serve one to a browser with a student's JupyterLab (`student_lab`).

A course is a folder with nbgrader_config.py and source/ (plus whatever else a test needs); nbgrader
runs in it with `nbgrader_env()`, so it uses the course's own gradebook and the default exchange.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.pg_server import free_port

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "initialization"
VENV_BIN = Path(sys.executable).parent
COURSE_FILES = ("nbgrader_config.py", "hide_hidden_tests.py", "source")
LEFTOVERS = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")


def nbgrader_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses.

    The venv's bin/ goes first on PATH (nbgrader shells out to `alembic`), and the COURSEKIT_GRADEBOOK
    and COURSEKIT_EXCHANGE overrides are dropped: a course copy must never write to the developer's
    gradebook or exchange.  A test that wants them sets them itself.
    """
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("COURSEKIT_GRADEBOOK", None)
    env.pop("COURSEKIT_EXCHANGE", None)
    return env


def new_course(dest: Path, files: tuple[str, ...] = COURSE_FILES, origin: Path = ROOT) -> Path:
    """A course folder at ``dest`` holding copies of ``files`` (files or folders) from ``origin``."""
    dest.mkdir(parents=True)
    for name in files:
        src = origin / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=LEFTOVERS)
        else:
            shutil.copy(src, dest / name)
    return dest


def generate_assignment(course: Path, *options: str, env: dict[str, str] | None = None,
                        assignment: str = ASSIGNMENT) -> None:
    """Run the real `nbgrader generate_assignment ASSIGNMENT` in ``course``; fail with its output."""
    args = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, *options]
    done = subprocess.run(args, cwd=course, env=env or nbgrader_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"generate_assignment failed in {course}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def nbgrader_autograde(course: Path, *options: str, assignment: str = ASSIGNMENT, jobs: int = 2,
                       timeout: float = 1800) -> None:
    """Stock `nbgrader autograde ASSIGNMENT` over every student in ``course``, as `jobs` runs side
    by side, each over its share of the students (`--CourseDirectory.student_id_exclude` names the
    others); fail with their output.

    Stock nbgrader runs one notebook at a time, so one run leaves a core idle; the runs write to
    the same gradebook, a submission at a time, as two instructors' runs would."""
    students = sorted(p.parent.name for p in (course / "submitted").glob(f"*/{assignment}") if p.is_dir())
    shares = [students[i::jobs] for i in range(jobs) if students[i::jobs]]
    runs = [subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", assignment, *options,
                              "--CourseDirectory.student_id_exclude="
                              + ",".join(s for s in students if s not in share)],
                             cwd=course, env=nbgrader_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
            for share in shares]
    for run in runs:
        output, _ = run.communicate(timeout=timeout)
        assert run.returncode == 0, f"nbgrader autograde failed in {course}:\n{output[-3000:]}"


def copy_course(template: Path, dest: Path) -> Path:
    """A private copy of a generated course (its gradebook included), for one test to change."""
    shutil.copytree(template, dest)
    return dest


# --- a student's JupyterLab (the browser tests) ---------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# JupyterLab settings for a test: render every cell (not only those in view), no news pop-up.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}
# What a student's JupyterLab must not offer (nbgrader's installation guide: `jupyter labextension disable`).
INSTRUCTOR_LABEXTENSIONS = ["@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                            "@jupyter/nbgrader:course-list"]
INSTRUCTOR_SERVER_EXTENSIONS = ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"]


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout: float = 90,
                       name: str = "jupyter lab") -> None:
    """Wait until ``url`` answers 200, or fail with the server's log if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.returncode}:\n{log.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{name} did not answer {url} within {timeout} s:\n{log.read_text()[-5000:]}")


def disable_instructor_tools(env: dict[str, str]) -> None:
    """Give the server a student's configuration: nbgrader's instructor extensions off, user level.

    `--level=user` and `--user` write into JUPYTER_CONFIG_DIR, which `env` points at a temporary folder.
    """
    for extension in INSTRUCTOR_LABEXTENSIONS:
        subprocess.run(["jupyter", "labextension", "disable", "--level=user", extension],
                       env=env, check=True, capture_output=True)
    for extension in INSTRUCTOR_SERVER_EXTENSIONS:
        subprocess.run(["jupyter", "server", "extension", "disable", "--user", extension],
                       env=env, check=True, capture_output=True)


@contextmanager
def student_lab(base: Path, folder: Path, env: dict[str, str],
                settings: dict[str, dict] | None = None) -> Iterator[tuple[str, str]]:
    """A real `jupyter lab` with a student's configuration, serving a copy of ``folder`` (the release
    of one assignment) under ``base``/home/; yields (server URL, token).  ``settings`` add to
    LAB_SETTINGS (e.g. the interface language)."""
    shutil.copytree(folder, base / "home" / folder.name)
    for name, values in {**LAB_SETTINGS, **(settings or {})}.items():
        path = base / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    (base / "workspaces").mkdir()
    env = {k: v for k, v in env.items() if not k.startswith(("JUPYTER", "XDG_"))}
    env.update(HOME=str(base / "home"), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), JUPYTER_CONFIG_DIR=str(base / "config"))
    disable_instructor_tools(env)
    token, port = secrets.token_hex(16), free_port()
    log = base / "jupyter-lab.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={base / 'home'}",
             "--ServerApp.allow_root=True"],  # CI runs as root; a hub never would
            cwd=base / "home", env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/api/status?token={token}", server, log)
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
