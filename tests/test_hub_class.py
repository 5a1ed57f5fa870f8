"""A JupyterHub class in the browser: real Unix accounts, JupyterHub from PyPI with its proxy from
npm, LocalProcessSpawner, the formgrader as a hub service, the gradebook on a real PostgreSQL server.

The hub runs jupyterhub/jupyterhub_config.py as README tells an admin to install it (a copy of the
folder, the site's values in COURSEKIT_* variables), on 127.0.0.1 only.  Its accounts are made for
the test and removed at the end, even when it fails; a run killed before its clean-up leaves
accounts marked with ACCOUNT_MARK, which the next run removes first.

    ckh-teacher   instructor: Unix group ckh-instructors, so hub group formgrade-weight-init
    ckh-grader    owns the course folder, runs the formgrader service; logs in to nothing
    ckh-ada       student (ckh-students): types the right solution      -> 9 / 9
    ckh-ben       student: He with Xavier's sqrt(1 / n), a typical slip  -> 6 / 9
    ckh-cy        student: leaves the stubs untouched                    -> 0 / 9

The `semester` fixture runs the class once, in order, through Debian's Chromium where a person
would use a browser: each student logs in on the hub's login page, fetches the assignment in
JupyterLab's Assignments tab, opens it, types, validates and submits; the grader account collects,
`coursekit autograde` grades into PostgreSQL, the instructor opens the formgrader through the hub
and generates and releases feedback there; each student fetches their feedback.  The tests then
check what it recorded, and probe what each account can reach while the hub still runs.
Screenshots of every step go to test-artifacts/hub-*.png; `make screenshot` also refreshes the
two README shows (docs/hub-student.png, docs/hub-instructor.png).
"""

from __future__ import annotations

import filecmp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from scripts.course import ASSIGNMENT, RELEASE, ROOT
from scripts.pg_server import PostgresServer, PostgresUnavailable, free_port
from scripts.student_work import CORRECT, solved_cell
from tests.helpers import (
    VENV_BIN,
    HubAccounts,
    leaked_hidden_text,
    nbgrader_env,
    new_course,
    require,
    wait_until_serving,
)

pytestmark = pytest.mark.hub

COURSE_ID = "weight-init"
USER_ENV = Path(os.environ.get("COURSEKIT_USER_ENV", "/opt/weight-init-hub"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = ROOT / "test-artifacts"
# `make screenshot` refreshes README's two pictures from these steps, at half size.
README_SHOTS = {"3-ckh-ben-validated": ROOT / "docs" / "hub-student.png",
                "6-formgrader-students": ROOT / "docs" / "hub-instructor.png",
                "4b-ckh-ben-early-feedback": ROOT / "docs" / "hub-feedback.png",
                "10-status-page": ROOT / "docs" / "hub-status.png"}

ACCOUNT_MARK = "coursekit hub test account"
STUDENTS_GROUP, INSTRUCTORS_GROUP = "ckh-students", "ckh-instructors"
INSTRUCTOR, GRADER = "ckh-teacher", "ckh-grader"
STATUS_PAGE = f"/services/{COURSE_ID}-status/"  # the grading service's page for instructors
# A folder anyone can make in the exchange's inbound/: its name is the student's text, and it names an
# assignment the course does not have, so the grading service lists it as a failure on its page.
HOSTILE_ASSIGNMENT = '<img src=x onerror="document.title=document.domain">'
XAVIER_HE = CORRECT["initialize_parameters_he"].replace("np.sqrt(2 /", "np.sqrt(1 /")
# What each student types, and the score a hand count of the test cells gives it (3 points each).
STUDENTS = {
    "ckh-ada": (CORRECT, 9),
    "ckh-ben": ({**CORRECT, "initialize_parameters_he": XAVIER_HE}, 6),
    "ckh-cy": ({}, 0),
}
ACCOUNTS = {INSTRUCTOR: [INSTRUCTORS_GROUP], GRADER: [], **{s: [STUDENTS_GROUP] for s in STUDENTS}}
# The tools nbgrader's JupyterLab extension adds to the Nbgrader menu, by command id.
STUDENT_TOOLS = {"nbgrader:open-assignment-list"}
INSTRUCTOR_TOOLS = {"nbgrader:open-create-assignment", "nbgrader:open-formgrader", "nbgrader:open-course-list",
                    "sidebar:Create Assignment"}
# JupyterLab settings for a test: render every cell (not only those in view), no news pop-up.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}
RELEASE_CELLS = json.loads(RELEASE.read_text(encoding="utf-8"))["cells"]
GRADE_IDS = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in RELEASE_CELLS]
SLOW_MS = 180_000  # a server start or a validation on a busy 2-core machine


# --- Unix accounts ----------------------------------------------------------------------------------

def remove_accounts() -> None:
    """Remove this test's accounts and groups (and stop what still runs as them)."""
    HubAccounts(ACCOUNTS, (STUDENTS_GROUP, INSTRUCTORS_GROUP), ACCOUNT_MARK).remove()


def create_accounts(homes: Path) -> dict[str, str]:
    """The test's accounts, each with a private home and a random password; {name: password}."""
    passwords = {name: secrets.token_urlsafe(12) for name in ACCOUNTS}
    HubAccounts(ACCOUNTS, (STUDENTS_GROUP, INSTRUCTORS_GROUP), ACCOUNT_MARK).create(homes, passwords)
    return passwords


def as_account(name: str, args: list[str], cwd: Path | str = "/", env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run a command as the account `name`, with its own groups only (none of root's)."""
    account = pwd.getpwnam(name)
    base_env = {"HOME": account.pw_dir, "USER": name, "LANG": "C.UTF-8",
                "PATH": f"{USER_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin"}
    done = subprocess.run(args, cwd=cwd, env={**base_env, **(env or {})}, user=account.pw_uid,
                          group=account.pw_gid, extra_groups=os.getgrouplist(name, account.pw_gid),
                          capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"{' '.join(args)} as {name} failed:\n{done.stdout}\n{done.stderr}"
    return done


def give_lab_settings(name: str) -> None:
    """The test's JupyterLab settings in the account's own settings folder."""
    account = pwd.getpwnam(name)
    folder = Path(account.pw_dir) / ".jupyter"
    for setting, values in LAB_SETTINGS.items():
        path = folder / "lab" / "user-settings" / setting
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(folder)], check=True)


# --- The hub ----------------------------------------------------------------------------------------

@dataclass
class Hub:
    """The running class: where everything is, and what the semester recorded."""

    base: Path
    url: str
    passwords: dict[str, str]
    gradebook_url: str
    pages: dict[str, Page] = field(default_factory=dict)
    validation: dict[str, str] = field(default_factory=dict)
    tools: dict[str, set[str]] = field(default_factory=dict)
    formgrader_scores: dict[str, str] = field(default_factory=dict)
    feedback_on_page: dict[str, str] = field(default_factory=dict)
    # the grading service's pages (coursekit serve), as each student saw them in JupyterLab
    early_feedback: dict[str, str] = field(default_factory=dict)
    early_seconds: dict[str, float] = field(default_factory=dict)  # from Submit to the page seen
    final_feedback: dict[str, str] = field(default_factory=dict)
    coursekit_report: list[dict] = field(default_factory=list)
    # the grading service's page as the instructor saw it: text, and what the browser made of it
    status_text: str = ""
    status_markup: dict[str, int | str] = field(default_factory=dict)
    service_files: dict[str, str] = field(default_factory=dict)  # what the grading service wrote -> its owner
    status_after_kill: str = ""  # the status page after its process was killed with SIGKILL and restarted
    status_restarted: bool = False

    @property
    def course(self) -> Path:
        return self.base / "course"

    @property
    def exchange(self) -> Path:
        return self.base / "exchange"

    def home(self, name: str) -> Path:
        return Path(pwd.getpwnam(name).pw_dir)

    def site_env(self) -> dict[str, str]:
        """The COURSEKIT_* values jupyterhub_config.py and nbgrader_config.py read."""
        return {"COURSEKIT_COURSE_DIR": str(self.course), "COURSEKIT_EXCHANGE": str(self.exchange),
                "COURSEKIT_GRADEBOOK": self.gradebook_url, "COURSEKIT_USER_ENV": str(USER_ENV),
                "COURSEKIT_GRADER": GRADER, "COURSEKIT_STUDENTS_GROUP": STUDENTS_GROUP,
                "COURSEKIT_INSTRUCTORS_GROUP": INSTRUCTORS_GROUP}

    def as_grader(self, *args: str) -> str:
        """A command of the instructors' workflow, as the grader account in the course folder."""
        done = as_account(GRADER, list(args), cwd=self.course, env=self.site_env())
        return done.stdout + done.stderr

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=ARTIFACTS / f"hub-{name}.png")


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        pytest.skip("a hub with real Unix accounts needs root (CI runs as root)")
    missing = [what for what, ok in [
        (f"the hub's environment {USER_ENV}", (USER_ENV / "bin" / "jupyterhub-singleuser").exists()),
        ("configurable-http-proxy", shutil.which("configurable-http-proxy") is not None),
        (f"Chromium ({CHROMIUM})", Path(CHROMIUM).exists()),
    ] if not ok]
    require(", ".join(missing), not missing)
    # From "/": `python -c` puts the current folder first on sys.path, and here that is this repository.
    installed = subprocess.run([USER_ENV / "bin" / "python", "-c", "import coursekit; print(coursekit.__file__)"],
                               capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    stale = filecmp.dircmp(Path(installed).parent, ROOT / "coursekit", ignore=["__pycache__"])
    assert not (stale.diff_files or stale.left_only or stale.right_only), \
        f"the kit in {USER_ENV} differs from coursekit/ ({stale.diff_files + stale.right_only}); run `make hub-env`"


def set_up_course(hub: Hub) -> None:
    """What README tells the admin and the instructor to do before the class starts."""
    subprocess.run(["make", "-s", "-C", str(ROOT), "exchange", f"EXCHANGE={hub.exchange}"], check=True)
    new_course(hub.course)
    subprocess.run(["chown", "-R", f"{GRADER}:{GRADER}", str(hub.course)], check=True)
    hub.course.chmod(0o700)
    hub.as_grader("nbgrader", "generate_assignment", ASSIGNMENT)
    hub.as_grader("nbgrader", "release_assignment", ASSIGNMENT)
    for name in [INSTRUCTOR, *STUDENTS]:
        give_lab_settings(name)


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[Hub]:
    check_prerequisites()
    remove_accounts()  # leftovers of a run that was killed
    # Not under pytest's tmp_path (private to root): the accounts must reach the exchange and homes.
    base = Path(tempfile.mkdtemp(prefix="coursekit-hub-"))
    base.chmod(0o755)
    (base / "home").mkdir()
    pg = PostgresServer()
    server = None
    try:
        passwords = create_accounts(base / "home")
        try:
            pg.start()
        except PostgresUnavailable as exc:  # it says what to install
            pytest.skip(str(exc))
        h = Hub(base, f"http://127.0.0.1:{free_port()}", passwords, pg.create_database("weight_init"))
        set_up_course(h)
        # The admin's copy of the configuration folder (README: /etc/jupyterhub/weight-init).
        config = shutil.copytree(ROOT / "jupyterhub", base / "etc" / "jupyterhub", ignore=shutil.ignore_patterns("__pycache__"))
        state = base / "hub-state"
        state.mkdir(mode=0o700)
        log = base / "jupyterhub.log"
        env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **h.site_env(),
               "COURSEKIT_FORMGRADER_PORT": str(free_port()), "COURSEKIT_STATUS_PORT": str(free_port())}
        with log.open("w") as out:
            server = subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(config / "jupyterhub_config.py"),
                 f"--JupyterHub.bind_url={h.url}",
                 f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}",
                 f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
                 # A Jupyter server without a terminal ignores SIGINT, so at shutdown the hub waits
                 # this long before it sends SIGTERM (default 10 s): the test's clean-up, nothing more.
                 "--LocalProcessSpawner.interrupt_timeout=1"],
                cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until_serving(f"{h.url}/hub/health", server, log, timeout=120, name="jupyterhub")
        yield h
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)  # the hub stops the servers and services it started
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        try:
            remove_accounts()
        finally:
            pg.stop()
            shutil.rmtree(base, ignore_errors=True)


# --- People in the browser --------------------------------------------------------------------------

def log_in(browser, hub: Hub, name: str, shot: str | None = None) -> Page:
    """Log in on the hub's login page, which starts the person's server; `wait_for_lab` waits for it."""
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", hub.passwords[name])
    if shot:
        hub.shot(page, shot)
    page.click("#login_submit")
    hub.pages[name] = page
    return page


def wait_for_lab(page: Page, name: str) -> None:
    page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=SLOW_MS)
    # A first login restores an empty workspace, then opens the Launcher; a menu opened before that
    # would be closed by it.
    page.locator(".jp-Launcher").wait_for(timeout=SLOW_MS)


def nbgrader_tools(hub: Hub, page: Page, name: str) -> set[str]:
    """The nbgrader tools the person sees in JupyterLab: the commands shown in the Nbgrader menu (it
    lists every tool, hiding those whose extension is off), and "sidebar:Create Assignment" when the
    right sidebar has that panel."""
    page.locator(".lm-MenuBar-item", has_text="Nbgrader").click()
    page.locator(".lm-Menu").wait_for()
    hub.shot(page, f"2-{name}-menu")
    tools = {item.get_attribute("data-command")
             for item in page.locator(".lm-Menu-item[data-command^='nbgrader:']").all() if item.is_visible()}
    page.keyboard.press("Escape")
    if page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab", has_text="Create Assignment").count():
        tools.add("sidebar:Create Assignment")
    return tools


def open_assignments(page: Page) -> None:
    page.locator(".lm-MenuBar-item", has_text="Nbgrader").click()
    page.locator(".lm-Menu-item[data-command='nbgrader:open-assignment-list']").click()
    page.locator("#released_assignments_list").wait_for()


def cell(page: Page, grade_id: str):
    return page.locator(".jp-Notebook .jp-Cell").nth(GRADE_IDS.index(grade_id))


def validate(page: Page) -> str:
    """Click nbgrader's Validate button (it saves first); the verdict's text."""
    page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
    dialog = page.locator(".jp-Dialog .jp-Dialog-content")
    dialog.wait_for(timeout=SLOW_MS)
    return dialog.inner_text()


def close_dialog(page: Page) -> None:
    page.locator(".jp-Dialog .jp-Dialog-button").first.click()
    page.locator(".jp-Dialog").wait_for(state="detached")


def student_works(hub: Hub, page: Page, name: str, bodies: dict[str, str]) -> None:
    """Fetch in the Assignments tab, open the notebook, type, validate, submit."""
    open_assignments(page)
    page.locator("#released_assignments_list button", has_text="Fetch").click()
    fetched = page.locator("#fetched_assignments_list")
    fetched.get_by_text(ASSIGNMENT).first.wait_for()
    hub.shot(page, f"2-{name}-fetched")
    fetched.locator(".assignment-notebooks-link").click()  # the assignment's list of notebooks
    fetched.locator(".assignment-notebooks a", has_text=ASSIGNMENT).click()
    page.locator(".jp-Notebook .jp-Cell").nth(len(RELEASE_CELLS) - 1).wait_for(timeout=SLOW_MS)
    for grade_id, body in bodies.items():
        stub = "".join(RELEASE_CELLS[GRADE_IDS.index(grade_id)]["source"])
        cell(page, grade_id).locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(solved_cell(stub, body, signature=f"work of {name}"))
    hub.validation[name] = validate(page)
    # The dialog's traceback box scrolls, and the test's explanation is at its end: show the end,
    # as a student scrolls to it (README's picture of this step is about that explanation).
    page.locator(".jp-Dialog").first.evaluate(
        "d => d.querySelectorAll('*').forEach(e => { if (e.scrollHeight > e.clientHeight + 1) e.scrollTop = e.scrollHeight; })")
    hub.shot(page, f"3-{name}-validated")
    close_dialog(page)
    page.locator(".lm-TabBar-tab", has_text="Assignments").click()
    page.locator("#fetched_assignments_list button", has_text="Submit").click()
    page.locator("#submitted_assignments_list").get_by_text(ASSIGNMENT).first.wait_for(timeout=SLOW_MS)
    hub.shot(page, f"4-{name}-submitted")


def fetch_feedback(hub: Hub, page: Page, name: str) -> None:
    page.locator(".lm-TabBar-tab", has_text="Assignments").click()
    page.locator("#refresh_assignments_list").click()
    page.locator("#submitted_assignments_list button", has_text="Fetch Feedback").click()
    page.locator("#submitted_assignments_list a", has_text="view feedback").click()
    page.locator(".jp-DirListing-item", has_text=f"{ASSIGNMENT}.html").dblclick()
    total = page.frame_locator(".jp-HTMLViewer iframe").get_by_text(re.compile(r"\(Score: [\d.]+ / [\d.]+\)"))
    hub.feedback_on_page[name] = total.first.inner_text()
    hub.shot(page, f"8-{name}-feedback")


def service_feedback(hub: Hub, page: Page, name: str, shot: str, has: str) -> str:
    """Fetch Feedback in the Assignments tab until the grading service's page (holding `has`) is there;
    open it and return its text as the HTML viewer shows it."""
    deadline = time.monotonic() + SLOW_MS / 1000
    page.locator(".lm-TabBar-tab", has_text="Assignments").click()
    while True:
        page.locator("#refresh_assignments_list").click()
        page.locator("#submitted_assignments_list button", has_text="Fetch Feedback").click()
        page.wait_for_timeout(500)
        fetched = list((hub.home(name) / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        if fetched and has in fetched[0].read_text(encoding="utf-8"):
            break
        assert time.monotonic() < deadline, f"no feedback with {has!r} for {name}"
    tab = page.locator(".lm-TabBar-tab", has_text=f"{ASSIGNMENT}.html")
    if tab.count():  # a page opened before: close it, so the viewer reads the new file
        tab.first.locator(".lm-TabBar-tabCloseIcon").click()
    page.locator("#submitted_assignments_list a", has_text="view feedback").click()
    page.locator(".jp-DirListing-item", has_text=f"{ASSIGNMENT}.html").dblclick()
    frame = page.frame_locator(".jp-HTMLViewer iframe")
    frame.get_by_text(has).first.wait_for()
    text = frame.locator("body").inner_text()
    hub.shot(page, shot)
    page.locator(".lm-TabBar-tab", has_text="Assignments").click()
    return text


def move_due_date(hub: Hub, when: datetime) -> None:
    hub.as_grader("nbgrader", "db", "assignment", "add", ASSIGNMENT, f"--duedate={when.isoformat()}")


def formgrader_button(hub: Hub, page: Page, button: str, done: str) -> None:
    """Click a button of the assignment's row in the formgrader's Manage Assignments page."""
    page.locator(f"#main-table tr:has-text('{ASSIGNMENT}') .{button} a").click()
    modal = page.locator("#success-modal, #error-modal")
    modal.wait_for(timeout=SLOW_MS)
    text = modal.inner_text()
    assert done in text, text
    modal.locator("button[data-dismiss='modal']").first.click()
    modal.wait_for(state="detached")


def assert_submission_secrets_carried(hub: Hub) -> None:
    """`release_feedback` names each feedback file after the submission's submission_secret.txt, so
    coursekit must copy it next to the autograded notebook, as `nbgrader autograde` does."""
    secrets = list((hub.course / "submitted").glob(f"*/{ASSIGNMENT}/submission_secret.txt"))
    assert len(secrets) == len(STUDENTS)
    for secret in secrets:
        graded = hub.course / "autograded" / secret.parent.parent.name / ASSIGNMENT / secret.name
        assert graded.read_bytes() == secret.read_bytes()


def instructor_grades(hub: Hub) -> None:
    """Collect and grade from the command line, then look and send feedback in the formgrader."""
    hub.as_grader("nbgrader", "collect", ASSIGNMENT)
    # coursekit's sandbox needs root (SECURITY.md): the grading machine's admin runs it.
    # The grading service graded every submission already: --force grades them again here.
    graded = subprocess.run([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json", "--force"],
                            cwd=hub.course, env={**nbgrader_env(), **hub.site_env()},
                            capture_output=True, text=True, timeout=600)
    assert graded.returncode == 0, graded.stderr[-3000:]
    hub.coursekit_report = [json.loads(line) for line in graded.stdout.splitlines() if line.strip()]
    assert_submission_secrets_carried(hub)

    page = hub.pages[INSTRUCTOR]
    wait_for_lab(page, INSTRUCTOR)
    hub.tools[INSTRUCTOR] = nbgrader_tools(hub, page, INSTRUCTOR)
    hub.shot(page, "5-instructor-lab")
    page.goto(f"{hub.url}/services/{COURSE_ID}/formgrader/manage_students")
    rows = page.locator("#main-table tr")
    rows.filter(has_text=next(iter(STUDENTS))).locator("td.score").filter(has_text="/").wait_for()
    for i in range(rows.count()):
        hub.formgrader_scores[rows.nth(i).locator("td.id").inner_text().strip()] = \
            rows.nth(i).locator("td.score").inner_text().strip()
    hub.shot(page, "6-formgrader-students")
    page.goto(f"{hub.url}/services/{COURSE_ID}/formgrader/manage_assignments")
    formgrader_button(hub, page, "generate-feedback", "Successfully generated feedback")
    formgrader_button(hub, page, "release-feedback", "Successfully released feedback")
    hub.shot(page, "7-formgrader-feedback-released")


def owners_of_service_files(hub: Hub) -> dict[str, str]:
    """{path: owning account} of what the grading service (root) wrote in the course and the exchange."""
    paths = [*hub.course.glob("serve.sqlite*"), *(hub.exchange / COURSE_ID / "feedback").iterdir()]
    for student in STUDENTS:
        for step in ("submitted", "autograded"):
            folder = hub.course / step / student / ASSIGNMENT
            paths += [folder.parent.parent, folder.parent, folder, *folder.iterdir()]
    return {str(path): pwd.getpwuid(path.lstat().st_uid).pw_name for path in paths}


def plant_hostile_submission(hub: Hub) -> str:
    """ckh-cy makes a folder in inbound/ by hand, as any student can, named with markup; its name."""
    name = f"ckh-cy+{HOSTILE_ASSIGNMENT}+{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S.%f} UTC+{secrets.token_hex(8)}"
    folder = hub.exchange / COURSE_ID / "inbound" / name
    as_account("ckh-cy", ["mkdir", str(folder)])
    as_account("ckh-cy", ["sh", "-c", 'echo 0123456789abcdef > "$1"', "sh", str(folder / "submission_secret.txt")])
    return name


def instructor_reads_the_status_page(hub: Hub) -> None:
    """The instructor opens the grading service's page through the hub, after a student planted a
    submission whose name is markup; waits until the page lists it as a failure."""
    plant_hostile_submission(hub)
    page = hub.pages[INSTRUCTOR].context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    response = page.goto(hub.url + STATUS_PAGE.rstrip("/"))  # as typed, without the last slash
    assert response is not None and response.status == 200, response and response.status
    assert page.url == hub.url + STATUS_PAGE, page.url
    deadline = time.monotonic() + SLOW_MS / 1000
    while page.locator("#failed").inner_text().strip() == "0":
        assert time.monotonic() < deadline, page.content()
        page.wait_for_timeout(1000)
        page.reload()
    hub.status_text = page.locator("body").inner_text()
    hub.status_markup = {"img": page.locator("body img").count(), "script": page.locator("body script").count(),
                         "title": page.title(), "dialogs": len(dialogs),
                         "csp": (page.request.get(hub.url + STATUS_PAGE).headers.get("content-security-policy") or "")}
    hub.shot(page, "10-status-page")
    # SIGKILL, then the hub starts it again (it polls its services' processes): the page is the same,
    # read from the journal again.
    killed = status_page_pids()
    assert len(killed) == 1, killed
    os.kill(killed[0], signal.SIGKILL)
    deadline = time.monotonic() + SLOW_MS / 1000
    while not (status_page_pids() and page.goto(hub.url + STATUS_PAGE).status == 200):
        assert time.monotonic() < deadline, "the hub did not start the status page again"
        page.wait_for_timeout(1000)
    hub.status_after_kill = page.locator("body").inner_text()
    hub.status_restarted = status_page_pids() != killed
    page.close()


def status_page_pids() -> list[int]:
    """The processes of the status page's service (`coursekit status --hub-service`, as the grader)."""
    uid = pwd.getpwnam(GRADER).pw_uid
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid == uid and \
                    b"--hub-service" in (proc / "cmdline").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # it ended while we looked
            continue
    return found


@pytest.fixture(scope="module")
def semester(hub: Hub) -> Iterator[Hub]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # Everyone logs in first: the hub starts the four servers side by side.
            for i, name in enumerate([*STUDENTS, INSTRUCTOR]):
                log_in(browser, hub, name, shot="1-login" if i == 0 else None)
            move_due_date(hub, datetime.now(timezone.utc) + timedelta(days=7))
            for name, (bodies, _) in STUDENTS.items():
                wait_for_lab(hub.pages[name], name)
                hub.tools[name] = nbgrader_tools(hub, hub.pages[name], name)
                student_works(hub, hub.pages[name], name, bodies)
                submitted = time.monotonic()
                hub.early_feedback[name] = service_feedback(hub, hub.pages[name], name,
                                                            f"4b-{name}-early-feedback", "(Score:")
                hub.early_seconds[name] = time.monotonic() - submitted
            move_due_date(hub, datetime.now(timezone.utc))  # the due date passes
            for name in STUDENTS:
                hub.final_feedback[name] = service_feedback(hub, hub.pages[name], name,
                                                            f"4c-{name}-final-feedback", "final feedback")
            hub.service_files = owners_of_service_files(hub)  # before root's `coursekit autograde` below
            instructor_grades(hub)
            for name in STUDENTS:
                fetch_feedback(hub, hub.pages[name], name)
            instructor_reads_the_status_page(hub)
        except Exception:
            for name, page in hub.pages.items():  # where each person was when it went wrong
                hub.shot(page, f"failed-{name}")
            raise
        if os.environ.get("COURSEKIT_UPDATE_SCREENSHOT"):  # `make screenshot`; not every run dirties docs/
            for step, dest in README_SHOTS.items():
                with Image.open(ARTIFACTS / f"hub-{step}.png") as shot:
                    shot.resize((shot.width // 2, shot.height // 2), Image.LANCZOS).save(dest, optimize=True)
        yield hub
        browser.close()


# --- The promises -----------------------------------------------------------------------------------

def test_validate_tells_each_student_how_their_notebook_does(semester):
    assert "Success! Your notebook passes all the tests." in semester.validation["ckh-ada"]
    assert "Success!" not in semester.validation["ckh-ben"]
    assert "NotImplementedError" in semester.validation["ckh-cy"]


@pytest.mark.parametrize("student", STUDENTS)
def test_each_submission_is_graded_into_the_postgresql_gradebook(semester, student):
    (reported,) = [r for r in semester.coursekit_report if r["student"] == student]
    assert (reported["status"], reported["score"]) == ("graded", STUDENTS[student][1])
    with Gradebook(semester.gradebook_url, COURSE_ID) as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        assert (submission.score, submission.max_score) == (STUDENTS[student][1], 9)


def test_the_formgrader_shows_the_instructor_every_submission_with_its_score(semester):
    assert semester.formgrader_scores == {s: f"{points} / 9" for s, (_, points) in STUDENTS.items()}


@pytest.mark.parametrize("student", STUDENTS)
def test_each_student_fetches_only_their_own_feedback(semester, student):
    fetched = sorted(html for html in (semester.home(student) / ASSIGNMENT / "feedback").rglob("*.html")
                     if ".ipynb_checkpoints" not in html.parts)  # JupyterLab's copy, made on opening it
    assert [html.name for html in fetched] == [f"{ASSIGNMENT}.html"], fetched
    assert f"(Score: {STUDENTS[student][1]}.0 / 9.0)" in semester.feedback_on_page[student]
    text = fetched[0].read_text(encoding="utf-8")
    signed = {name for name in STUDENTS if f"work of {name}" in text}
    assert signed == ({student} if STUDENTS[student][0] else set())
    assert re.search(rf"Score:\s*{STUDENTS[student][1]}\.0\s*/\s*9\.0", text)


# Points of the public tests (one per exercise) each student earns; the hidden ones add two each.
PUBLIC_POINTS = {"ckh-ada": 3, "ckh-ben": 2, "ckh-cy": 0}


@pytest.mark.parametrize("student", STUDENTS)
def test_the_grading_service_sends_public_results_right_after_submit_and_no_hidden_ones(semester, student):
    text = semester.early_feedback[student]
    print(f"{student}: feedback seen {semester.early_seconds[student]:.1f} s after Submit")
    assert f"(Score: {PUBLIC_POINTS[student]}.0 / 3.0)" in text
    assert "6 more points come from hidden tests, which are graded after the due date" in text
    for hidden in ("test_zeros_hidden", "test_random_hidden", "test_he_hidden"):
        (row,) = [line for line in text.splitlines() if line.startswith(hidden)]
        assert "graded after the due date" in row and "passed" not in row and "failed" not in row, row
    assert not leaked_hidden_text(text)


@pytest.mark.parametrize("student", STUDENTS)
def test_after_the_due_date_the_service_sends_every_result(semester, student):
    text = semester.final_feedback[student]
    assert f"(Score: {STUDENTS[student][1]}.0 / 9.0)" in text
    assert "graded after the due date" not in text
    assert not leaked_hidden_text(text)


def test_the_grader_account_reads_where_the_grading_service_stands(semester):
    out = semester.as_grader("coursekit", "status")
    assert "queue: 0 waiting to be graded" in out, out
    assert re.search(r"graded: [1-9]\d*, held over the hourly limit: 0, failed: 1;", out), out  # the planted one
    assert f"the course has no assignment '{HOSTILE_ASSIGNMENT}'" in out, out


def test_the_instructor_reads_where_the_grading_service_stands_on_its_page_through_the_hub(semester):
    text = semester.status_text
    assert re.search(r"Waiting to be graded \(queue\)\s+0\b", text), text
    graded = re.search(r"Graded\s+(\d+)", text)
    assert graded and int(graded[1]) == len(STUDENTS), text  # one submission each, graded early and final
    assert re.search(r"Failed\s+1\b", text), text
    assert re.search(r"last hour\s+[\d.]+ s\s+[\d.]+ s\s+[\d.]+ s\s+[1-9]", text), text
    assert f"the course has no assignment '{HOSTILE_ASSIGNMENT}'" in text  # the reason, as text


def test_the_status_page_is_the_same_after_sigkill_and_the_hubs_restart(semester):
    assert semester.status_restarted

    def counts(text: str) -> list[str]:
        return re.findall(r"^(?:Waiting|Graded|Held|Failed|Feedback).*$", text, re.M)

    assert counts(semester.status_after_kill) == counts(semester.status_text) != []
    assert f"the course has no assignment '{HOSTILE_ASSIGNMENT}'" in semester.status_after_kill


def test_markup_in_a_failure_on_the_status_page_stays_text(semester):
    assert semester.status_markup["img"] == 0 and semester.status_markup["script"] == 0
    assert semester.status_markup["title"] == f"Grading service: {COURSE_ID}" and semester.status_markup["dialogs"] == 0
    assert "default-src 'none'" in str(semester.status_markup["csp"])


def test_what_the_grading_service_writes_belongs_to_the_grader_account(semester):
    """It runs as root (SECURITY.md); nbgrader's own commands, run as the grader account, must be able
    to change everything it wrote."""
    assert len(semester.service_files) > 4 * len(STUDENTS)
    assert {path: owner for path, owner in semester.service_files.items() if owner != GRADER} == {}


def test_students_get_only_the_student_tools_and_the_instructor_all_of_them(semester):
    for student in STUDENTS:
        assert semester.tools[student] == STUDENT_TOOLS, student
    assert semester.tools[INSTRUCTOR] >= STUDENT_TOOLS | INSTRUCTOR_TOOLS


def test_a_student_is_refused_the_formgrader_the_status_page_and_the_instructors_server(semester):
    page = semester.pages["ckh-ada"].context.new_page()  # the student's own browser, logged in
    for target, path in [("formgrader", f"/services/{COURSE_ID}/formgrader/manage_students"),
                         ("instructor-server", f"/user/{INSTRUCTOR}/lab"), ("status-page", STATUS_PAGE)]:
        response = page.goto(semester.url + path)
        semester.shot(page, f"9-student-refused-{target}")
        assert response.status == 403, (path, response.status)
        assert "Manage Students" not in page.content() and "Waiting to be graded" not in page.content()
    page.close()


def test_the_instructor_reaches_the_formgrader_and_the_student_only_their_own_server(semester):
    page = semester.pages[INSTRUCTOR].context.new_page()
    assert page.goto(f"{semester.url}/services/{COURSE_ID}/formgrader/manage_students").status == 200
    assert page.goto(f"{semester.url}/user/ckh-ada/lab").status == 403  # an instructor is no admin
    page.close()


def test_other_students_accounts_cannot_read_a_submission(semester):
    """Checked with the other students' own uids and groups, on every copy of each submission."""
    course_inbound = semester.exchange / COURSE_ID / "inbound"
    for owner in STUDENTS:
        (exchange_copy,) = course_inbound.glob(f"{owner}+{ASSIGNMENT}+*")
        # student+assignment+timestamp+random: ExchangeSubmit.add_random_string (pinned in the student
        # configuration) keeps the folder's name, the only thing protecting its files, unguessable.
        assert len(exchange_copy.name.split("+")[3]) >= 12, exchange_copy.name
        copies = [semester.home(owner) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                  semester.course / "submitted" / owner / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                  semester.course / "autograded" / owner / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"]
        for other in set(STUDENTS) - {owner}:
            assert as_account(other, ["ls", str(course_inbound)], check=False).returncode != 0
            assert as_account(other, ["ls", str(semester.exchange / COURSE_ID / "feedback")],
                              check=False).returncode != 0
            for copy in copies:
                assert copy.exists()
                denied = as_account(other, ["cat", str(copy)], check=False)
                assert denied.returncode != 0 and "Permission denied" in denied.stderr, (other, copy)
