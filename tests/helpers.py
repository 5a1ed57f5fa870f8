"""What the tests share: the one place tests build, generate and copy a course folder, grade it
and read the results, and serve one to a browser with a student's JupyterLab (`student_lab`).
What bench/ needs too (course folders, gradebook reading) lives in scripts/courses.py and is
imported here; bench/ never imports tests/, nor tests/ bench/.

A course is a folder with nbgrader_config.py and source/ (plus whatever else a test needs); nbgrader
runs in it with `nbgrader_env()`, so it uses the course's own gradebook and the default exchange.

The coursekit tests grade throw-away copies of one template course (config, master, release, a
fresh gradebook made by the real `nbgrader generate_assignment`): conftest.py's session fixture
`template_course` builds it once (`build_template`), and each test grades in its own copy.

What students write comes from `scripts.student_work` (the hand-written correct answers and the
edits), the generated classes from `scripts.make_class`; the course's name and paths from `scripts.course`.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from coursekit import check
from coursekit.read import CourseError
from scripts import make_class
from scripts.course import ASSIGNMENT, MASTER, RELEASE
from scripts.courses import (  # noqa: F401 (the tests import them from here, as from every shared helper)
    COURSE_FILES,
    LEFTOVERS,
    VENV_BIN,
    build_template,
    copy_course,
    expected_scores,
    generate_assignment,
    gradebook_grades,
    gradebook_scores,
    nbgrader_env,
    new_course,
)
from scripts.pg_server import free_port
from scripts.student_work import CORRECT, edit_cells, fill_stub, solve

# The demo course holds what `make grade-nbgrader` runs (scripts/) and the helpers it imports.
DEMO_COURSE_FILES = ("nbgrader_config.py", "hide_hidden_tests.py", "init_utils.py", "public_tests.py", "datasets",
                     "source", "scripts")
EXERCISES = ("zeros", "random", "he")  # short names, in the notebook's order
FULL = dict.fromkeys(EXERCISES, 3.0)  # points of each exercise
# Points of the (public, hidden) test cells of an exercise, by its total.
CELL_POINTS = {0: (0, 0), 1: (1, 0), 3: (1, 2)}
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


# How the local pool tells that a worker killed with SIGKILL died: by its exit status, or by its
# pipe when it sends the worker a task first.  Which it notices first is a race; both are true.
KILLED = r"killed by SIGKILL|its pipe broke"


# --- course folders -------------------------------------------------------------------------------

def nbgrader_autograde(course: Path, *options: str, assignment: str = ASSIGNMENT, jobs: int = 2,
                       timeout: float = 1800) -> None:
    """Stock `nbgrader autograde ASSIGNMENT` over every student in ``course``, as `jobs` runs side
    by side (coursekit.check.stock_autograde); fail with their output."""
    try:
        check.stock_autograde(course, assignment, jobs, options=options, timeout=timeout)
    except CourseError as error:
        pytest.fail(str(error))


def demo_course(dest: Path, env: dict[str, str], config: str = "") -> Path:
    """A generated course at ``dest`` that also holds what `make grade-nbgrader` runs (scripts/) and
    the helpers it imports, with ``config`` lines added to its nbgrader_config.py."""
    course = new_course(dest, DEMO_COURSE_FILES)
    if config:
        with open(course / "nbgrader_config.py", "a", encoding="utf-8") as file:
            file.write("\n" + config + "\n")
    generate_assignment(course, "--force", "--log-level=ERROR", env=env)
    return course


def run(course: Path, env: dict[str, str], *args: str, **kwargs: Any) -> str:
    """Run a command in ``course`` (as `make` would there); its output, or fail with it."""
    done = subprocess.run(list(args), cwd=course, env=env, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


# --- submissions ----------------------------------------------------------------------------------

def release_notebook() -> dict:
    """The release notebook, as JSON."""
    return json.loads(RELEASE.read_text(encoding="utf-8"))


def solved() -> dict:
    """The release notebook with all three exercises solved correctly."""
    return solve(release_notebook(), CORRECT)


def submit(course: Path, student: str, notebook: dict | bytes, timestamp: str | None = make_class.TIMESTAMP,
           assignment: str = ASSIGNMENT) -> Path:
    """Place a submission as the exchange would: submitted/<student>/<assignment>/<assignment>.ipynb."""
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    path.write_bytes(notebook if isinstance(notebook, bytes) else json.dumps(notebook).encode())
    if timestamp:
        (folder / "timestamp.txt").write_text(timestamp + "\n")
    return path


def course_with(tmp_path_factory: pytest.TempPathFactory, template: Path, name: str,
                notebooks: dict[str, dict | bytes]) -> Path:
    """A private copy of the template course with one submission per student: {student: notebook}."""
    course = copy_course(template, tmp_path_factory.mktemp(name) / "course")
    for student, notebook in notebooks.items():
        submit(course, student, notebook)
    return course


def slow_down_last(course: Path, manifest: dict, seconds: int = 5) -> list[str]:
    """Make the last students' first solution cells sleep first (their grades stay the same);
    return them in grading order.

    A test that kills a grader mid-batch needs the kill to land before the end on however fast a
    machine.  The grader reports a batch only once it is committed, so the first report may come
    when a slow student finishes; there are more slow students than workers (one per core), so the
    last one starts after that and cannot be done when the test kills the grader on that report."""
    slow = sorted(manifest)[-((os.cpu_count() or 1) + 2):]
    for student in slow:
        path = course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = next(c for c in notebook["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = f"import time\ntime.sleep({seconds})\n" + source
        path.write_text(json.dumps(notebook), encoding="utf-8")
    return slow


# --- the general course (tests/general_course/, docs/coursekit.md "A second assignment") ---------

GENERAL_COURSE = Path(__file__).resolve().parent / "general_course"
TEXTSTATS = "textstats"
COURSE_ID = "textstats-course"
NOTEBOOKS = {"words": ["test_tokenize", "test_word_counts", "test_word_counts_uses_tokenize", "test_top_words",
                       "explain_tokenize"],
             "stats": ["test_mean", "test_mean_range", "test_variance", "test_sample_std"]}
GENERAL_TIMESTAMP = "2026-11-20 12:00:00.000000 UTC"

# What each student writes in place of each stub (code cells) or answer (the markdown cell).
ANSWERS = {
    "solved": {
        "tokenize": "words = []\n"
                    "for match in re.finditer(r\"[A-Za-z']+\", text):\n"
                    "    words.append(match.group().lower())\n"
                    "return words",
        "word_counts": "counts = {}\n"
                       "for word in tokenize(text):\n"
                       "    counts[word] = counts.get(word, 0) + 1\n"
                       "return counts",
        "top_words": "return sorted(word_counts(text).items(), key=lambda kv: (-kv[1], kv[0]))[:n]",
        "explain_tokenize": "Hyphenated words are split in two, and accented letters are dropped (café -> caf).",
        "mean": "total, count = 0, 0\nfor x in xs:\n    total += x\n    count += 1\nreturn total / count",
        "variance": "m = mean(xs)\nreturn mean([(x - m) ** 2 for x in xs])",
        "sample_std": "sample_std = variance(SAMPLE) ** 0.5",
    },
    "partial": {
        "tokenize": "return re.findall(r\"[a-z']+\", text.lower())",
        "word_counts": "return dict(Counter(text.lower().split()))",  # splits again: punctuation stays
        "top_words": "pairs = sorted(word_counts(text).items(), key=lambda kv: (-kv[1], kv[0]))\n"
                     "return [[word, count] for word, count in pairs][:n]",  # lists, not tuples
        "mean": "return sum(xs) / len(xs)",
        "variance": "m = mean(xs)\nreturn sum((x - m) ** 2 for x in xs) / (len(xs) - 1)",  # the sample variance
    },
    "wrong": {
        "tokenize": "return text.split()",
        "word_counts": "return dict(Counter(tokenize(text)))",
        "top_words": "return sorted(word_counts(text).items())[:n]",
        "explain_tokenize": "It does not miss any word.",
        "mean": "return sum(xs) // len(xs)",  # floor division: right only when the mean is whole
        "variance": "m = mean(xs)\nreturn sum((x - m) ** 2 for x in xs) / len(xs)",
        "sample_std": "sample_std = math.sqrt(variance(SAMPLE))",
    },
    "untouched": {},
}

# nbgrader's scores, worked out by hand from the tests: auto_score per cell, None where a person
# grades (an answered manual cell); an untouched manual answer scores 0 ("No response.").
EXPECTED = {
    "solved": {"test_tokenize": 1, "test_word_counts": 2, "test_word_counts_uses_tokenize": 1, "test_top_words": 2,
               "explain_tokenize": None, "test_mean": 1, "test_mean_range": 1, "test_variance": 2,
               "test_sample_std": 1},
    "partial": {"test_tokenize": 1, "test_word_counts": 0, "test_word_counts_uses_tokenize": 0, "test_top_words": 0,
                "explain_tokenize": 0, "test_mean": 1, "test_mean_range": 1, "test_variance": 0,
                "test_sample_std": 0},
    # the floor-division mean is right for SAMPLE, [3, 3, 3] and [1, 3], so variance passes
    "wrong": {"test_tokenize": 0, "test_word_counts": 0, "test_word_counts_uses_tokenize": 1, "test_top_words": 0,
              "explain_tokenize": None, "test_mean": 0, "test_mean_range": 0, "test_variance": 2,
              "test_sample_std": 1},
    "untouched": {cell: 0 for cells in NOTEBOOKS.values() for cell in cells},
}


def _answer(text: str):
    def edit(source: str) -> str:
        return text if source.strip() == "YOUR ANSWER HERE" else fill_stub(source, text, keep_comment=False)
    return edit


def answer_textstats(release: Path, folder: Path, answers: dict[str, str]) -> None:
    """{words,stats}.ipynb of the textstats release at `release`, with `answers` written in, into `folder`."""
    for notebook in NOTEBOOKS:
        nb = json.loads((release / f"{notebook}.ipynb").read_text(encoding="utf-8"))
        edit_cells(nb, {gid: _answer(text) for gid, text in answers.items()})
        (folder / f"{notebook}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")


def write_students(course: Path) -> None:
    """submitted/<student>/textstats/{words,stats}.ipynb, each edited from the release."""
    for student, answers in ANSWERS.items():
        folder = course / "submitted" / student / TEXTSTATS
        folder.mkdir(parents=True)
        answer_textstats(course / "release" / TEXTSTATS, folder, answers)
        (folder / "timestamp.txt").write_text(GENERAL_TIMESTAMP + "\n")


# --- running coursekit ----------------------------------------------------------------------------

def run_coursekit(course: Path, *args: str, timeout: float = 600, wrapper: tuple[str, ...] = (),
                  env: dict[str, str] | None = None, assignment: str = ASSIGNMENT) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m coursekit autograde <assignment> --json ...`), under `wrapper`
    (e.g. setpriv with its options), in `env` (default: nbgrader_env())."""
    return subprocess.run([*wrapper, sys.executable, "-m", "coursekit", "autograde", assignment, "--json", *args],
                          cwd=course, env=env or nbgrader_env(), capture_output=True, text=True, timeout=timeout)


def coursekit(course: Path, *args: str, check: bool = True, timeout: float = 600,
              wrapper: tuple[str, ...] = (), env: dict[str, str] | None = None,
              assignment: str = ASSIGNMENT) -> list[dict]:
    """The JSON lines of `run_coursekit`; with `check`, fail unless it exits 0."""
    proc = run_coursekit(course, *args, timeout=timeout, wrapper=wrapper, env=env, assignment=assignment)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


# --- reading the results --------------------------------------------------------------------------

def cell_scores(course: Path) -> dict[tuple[str, str], float]:
    """{(student, test cell): points}; a cell nbgrader never scored counts 0."""
    return {key: score or 0.0 for key, score in gradebook_scores(course).items()}


def cell_points(totals: tuple[int, int, int]) -> dict[str, int]:
    """{test cell: points} of a notebook whose exercises (zeros, random, he) earned ``totals``."""
    return {f"test_{exercise}_{kind}": points for exercise, total in zip(EXERCISES, totals)
            for kind, points in zip(("public", "hidden"), CELL_POINTS[total])}


def exercise_scores(result: dict) -> dict[str, float]:
    """{exercise: points} of one `--json` result line."""
    cells = result["cells"]
    return {ex: cells[f"test_{ex}_public"]["score"] + cells[f"test_{ex}_hidden"]["score"] for ex in FULL}


def assert_graded(result: dict, expected: dict[str, float], note: str = "") -> None:
    """One `--json` result line: graded, with ``expected`` points per exercise and ``note`` in its reason."""
    assert result["status"] == "graded"
    assert exercise_scores(result) == expected, result["reason"]
    assert note in result["reason"]


def hidden_test_text() -> list[str]:
    """Lines of the master's hidden tests long enough to be unmistakable, and their numbers."""
    bodies = [body for cell in nbformat.read(MASTER, 4).cells for body in HIDDEN.findall(cell.source)]
    assert len(bodies) == 3
    lines = [line.strip() for body in bodies for line in body.splitlines() if len(line.strip()) >= 13]
    numbers = [n for body in bodies for n in re.findall(r"-?\d+\.\d{6,}", body)]
    return lines + numbers


def leaked_hidden_text(text: str) -> list[str]:
    """The pieces of the master's hidden tests that ``text`` shows."""
    return [piece for piece in hidden_test_text() if piece in text]


# --- a student's JupyterLab (the browser tests) ---------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
SETUP_HINT = "run `sudo make test-setup` (`make test` runs it; it installs only as root)"


def require(what: str, present: bool) -> None:
    """Skip the test, in one line saying what to run, when something `make test-setup` installs
    is missing (it installs only as root; as root, `make test` fails first if it could not)."""
    if not present:
        pytest.skip(f"{what} is not installed: {SETUP_HINT}")


def require_chromium() -> None:
    require(f"Chromium ({CHROMIUM})", Path(CHROMIUM).exists())
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


def run_cell(page: Any, cell: Any) -> None:
    """Run a notebook cell in JupyterLab as a student does (click into it, Ctrl+Enter) and see that
    JupyterLab took the run: its prompt changes to [*] or a new count.  On a loaded machine a key
    press can arrive before the click has given the editor focus and be lost (a CI run waited
    180 s for an output that never came); the press is then repeated."""
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    for _ in range(3):
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+Enter")
        try:
            page.wait_for_function("([el, before]) => el.innerText !== before",
                                   arg=[prompt.element_handle(), before], timeout=20_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"JupyterLab did not run the cell after three Ctrl+Enter (its prompt stayed {before!r})")


# --- the LMS --------------------------------------------------------------------------------------

def lms_results(platform: Any, private_key: str, public_key: str) -> dict[str, tuple[float, float, str]]:
    """userId -> (resultScore, resultMaximum, comment) of the platform's one line item, read over HTTP
    from its AGS results endpoint (every page) with an access token it grants the tool's key."""
    from pylti1p3.registration import Registration
    from pylti1p3.service_connector import ServiceConnector

    (lineitem,) = platform.lineitems
    registration = (Registration().set_issuer(platform.url).set_client_id(platform.client_id)
                    .set_auth_token_url(platform.token_url).set_tool_private_key(private_key)
                    .set_tool_public_key(public_key))
    token = ServiceConnector(registration).get_access_token(
        ["https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"])
    url: str | None = f"{lineitem}/results"
    found = {}
    while url:
        answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        for r in answer.json():
            found[r["userId"]] = (r["resultScore"], r["resultMaximum"], r.get("comment") or "")
        url = answer.links.get("next", {}).get("url")
    return found


# --- Unix accounts of the hub tests ---------------------------------------------------------------

def account_processes(uid: int) -> list[int]:
    """Process ids owned by `uid` (real uid), from /proc."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue  # the process ended while we looked
        if int(uid_line.split()[1]) == uid:
            pids.append(int(status.parent.name))
    return pids


@dataclass(frozen=True)
class HubAccounts:
    """The Unix accounts and groups a hub test makes, marked so that a later run (after a killed one)
    removes them and never an account it did not make."""

    accounts: dict[str, list[str]]  # name -> its supplementary groups
    groups: tuple[str, ...]
    mark: str  # the accounts' comment (GECOS) field

    def create(self, homes: Path, passwords: dict[str, str]) -> None:
        """Groups, then each account with a private home; `passwords` for those who log in with one."""
        for group in self.groups:
            subprocess.run(["groupadd", group], check=True, capture_output=True)
        for name, groups in self.accounts.items():
            home = homes / name
            subprocess.run(["useradd", "--comment", self.mark, "--home-dir", str(home), "--create-home",
                            "--shell", "/bin/bash", *(["--groups", ",".join(groups)] if groups else []), name],
                           check=True, capture_output=True)
            home.chmod(0o700)
        if passwords:
            subprocess.run(["chpasswd"], input="".join(f"{n}:{p}\n" for n, p in passwords.items()), text=True,
                           check=True, capture_output=True)

    def remove(self) -> None:
        """Remove the accounts and groups (and stop what still runs as them)."""
        for name in self.accounts:
            try:
                account = pwd.getpwnam(name)
            except KeyError:
                continue
            if account.pw_gecos != self.mark:
                raise RuntimeError(f"account {name} exists and was not made by this test; not removing it")
            for pid in account_processes(account.pw_uid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            # A killed process is gone only once the kernel has torn it down and its parent has
            # reaped it; userdel refuses (status 8) while any process of the account is left, as it
            # did once in CI right after the hub stopped.
            deadline = time.monotonic() + 30
            while account_processes(account.pw_uid) and time.monotonic() < deadline:
                time.sleep(0.1)
            subprocess.run(["userdel", name], check=True, capture_output=True)
        for group in self.groups:
            try:
                grp.getgrnam(group)
            except KeyError:
                continue
            subprocess.run(["groupdel", group], check=True, capture_output=True)
