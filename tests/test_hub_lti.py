"""Launches from an LMS into the hub over LTI 1.3, then the class's grades back into that LMS.

The LMS is a real LTI 1.3 platform on 127.0.0.1 (scripts/lti_platform.py: lti1p3platform, its own
RSA key, signed id_tokens); the hub runs jupyterhub/jupyterhub_config.py with COURSEKIT_LTI_* set,
as README tells an admin, so jupyterhub-ltiauthenticator checks each launch beside the login page.
Headless Chromium plays each person clicking the link in the LMS: platform -> the hub's OIDC login
-> the platform's authorization -> the signed launch posted to the hub.

    ckl-ada, ckl-ben, ckl-cy   Learners in the LMS (their LTI user ids are UUIDs, their student id
                               a custom parameter)               -> hub group ckl-students
    ckl-teacher, ckl-ta        Instructor, Teaching Assistant    -> ckl-instructors, formgrade-weight-init
                               (ckl-cy also has an institution Instructor role: still a student here)
    ckl-tom                    no LMS: logs in with his Unix password on the hub's login page, as
                               before LTI; in the Unix group ckl-instructors
    ckl-grader                 owns the course folder, runs the formgrader service

Then the three students' submissions are graded by `coursekit autograde`, `coursekit lms push`
sends the scores, and the test reads them back from the platform's AGS results endpoint under the
LTI user ids the hub recorded at each launch.  A launch with a role the course does not grade
(Mentor) and one for a person without a Unix account on the hub are refused.

Its accounts are made for the test and removed at the end (marked ACCOUNT_MARK; a killed run's
leftovers are removed first).  Needs root, `make hub-env` (COURSEKIT_USER_ENV), the proxy and
Chromium, like tests/test_hub_class.py; run it under `flock /tmp/hub-test.lock`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from pylti1p3.registration import Registration

from scripts.course import ASSIGNMENT, RELEASE, ROOT
from scripts.courses import generate_assignment, new_course
from scripts.lti_platform import Platform, new_key
from scripts.pg_server import free_port
from scripts.student_work import CORRECT, solve
from tests.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HubAccounts,
    lms_results,
    nbgrader_env,
    require,
    submit,
    wait_until_serving,
)

pytestmark = pytest.mark.hub

COURSE_ID = "weight-init"
FORMGRADERS = f"formgrade-{COURSE_ID}"
USER_ENV = Path(os.environ.get("COURSEKIT_USER_ENV", "/opt/weight-init-hub"))
ACCOUNT_MARK = "coursekit LTI hub test account"
STUDENTS_GROUP, INSTRUCTORS_GROUP = "ckl-students", "ckl-instructors"
GRADER, PAM_INSTRUCTOR = "ckl-grader", "ckl-tom"
XAVIER_HE = CORRECT["initialize_parameters_he"].replace("np.sqrt(2 /", "np.sqrt(1 /")
TEACHING_ASSISTANT = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
# hub name: (LTI user id, LMS role, full name, what they submit, hand-counted score)
LAUNCHED = {
    "ckl-ada": ("5b7e0c1e-8f43-4f0e-a1a1-2f6d3f7c9a01", "Learner", "Ada Lovelace", CORRECT, 9.0),
    "ckl-ben": ("c0ffee00-1234-4abc-9def-00000000b3e1", "Learner", "Ben Okafor",
                {**CORRECT, "initialize_parameters_he": XAVIER_HE}, 6.0),
    "ckl-cy": ("9d2a4b6c-0000-4c1c-8c1c-0000000000c1", "Learner", "Cy Zhang", {}, 0.0),
    "ckl-ta": ("4a4a4a4a-5555-4555-8555-555555555555", TEACHING_ASSISTANT, "Alan Turing", None, None),
    "ckl-teacher": ("3e3e3e3e-7777-4777-8777-777777777777", "Instructor", "Grace Hopper", None, None),
}
INSTITUTION_INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"
STUDENTS = [name for name, entry in LAUNCHED.items() if entry[1] == "Learner"]
ACCOUNTS = {**{name: [STUDENTS_GROUP] for name in STUDENTS}, "ckl-teacher": [], "ckl-ta": [],
            PAM_INSTRUCTOR: [INSTRUCTORS_GROUP], GRADER: []}
ARTIFACTS = ROOT / "test-artifacts"
README_SHOT = ROOT / "docs" / "lms-gradebook.png"


HUB_ACCOUNTS = HubAccounts(ACCOUNTS, (STUDENTS_GROUP, INSTRUCTORS_GROUP), ACCOUNT_MARK)


@dataclass
class LtiHub:
    base: Path
    url: str
    platform: Platform
    tool_key: str
    tool_public: str
    pam_password: str
    seen: dict[str, dict] = field(default_factory=dict)  # hub name -> the hub's user model after the launch
    refused: dict[str, int] = field(default_factory=dict)  # LMS user -> HTTP status of the launch
    formgrader: dict[str, int] = field(default_factory=dict)  # hub name -> status of the formgrader page
    browser: Any = None

    @property
    def course(self) -> Path:
        return self.base / "course"

    def site_env(self) -> dict[str, str]:
        return {"COURSEKIT_COURSE_DIR": str(self.course), "COURSEKIT_EXCHANGE": str(self.base / "exchange"),
                "COURSEKIT_USER_ENV": str(USER_ENV), "COURSEKIT_GRADER": GRADER,
                "COURSEKIT_STUDENTS_GROUP": STUDENTS_GROUP, "COURSEKIT_INSTRUCTORS_GROUP": INSTRUCTORS_GROUP,
                "COURSEKIT_LTI_ISSUER": self.platform.url, "COURSEKIT_LTI_CLIENT_ID": self.platform.client_id,
                "COURSEKIT_LTI_AUTHORIZE_URL": f"{self.platform.url}/authorize",
                "COURSEKIT_LTI_JWKS_URL": f"{self.platform.url}/jwks"}

    def credentials(self) -> Path:
        """The push's credentials, where README says: outside the course folder, mode 600."""
        folder = self.base / "secrets"
        folder.mkdir(mode=0o700, exist_ok=True)
        key = folder / "tool.pem"
        key.write_text(self.tool_key)
        key.chmod(0o600)
        path = folder / "lti.json"
        path.write_text(json.dumps({"issuer": self.platform.url, "client_id": self.platform.client_id,
                                    "deployment_id": self.platform.deployment_id,
                                    "token_url": self.platform.token_url,
                                    "lineitems_url": self.platform.lineitems_url, "private_key_file": str(key)}))
        path.chmod(0o600)
        return path


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        pytest.skip("a hub with real Unix accounts needs root (CI runs as root)")
    missing = [what for what, ok in [
        (f"{USER_ENV} (make hub-env)", (USER_ENV / "bin" / "jupyterhub-singleuser").exists()),
        ("configurable-http-proxy", shutil.which("configurable-http-proxy") is not None),
        (f"{CHROMIUM} (apt-get install chromium)", Path(CHROMIUM).exists()),
    ] if not ok]
    require(", ".join(missing), not missing)


@pytest.fixture(scope="module")
def hub() -> Iterator[LtiHub]:
    check_prerequisites()
    HUB_ACCOUNTS.remove()  # leftovers of a run that was killed
    base = Path(tempfile.mkdtemp(prefix="coursekit-lti-hub-"))
    base.chmod(0o755)
    (base / "home").mkdir()
    hub_url = f"http://127.0.0.1:{free_port()}"
    tool_key, tool_public = new_key()
    platform = Platform(tool_jwks={"keys": [dict(Registration.get_jwk(tool_public))]}, hub_url=hub_url)
    for name, (user_id, role, full_name, _, _) in LAUNCHED.items():
        # cy also teaches elsewhere: an institution role, which says nothing about this course
        extra = [INSTITUTION_INSTRUCTOR] if name == "ckl-cy" else []
        platform.enrol(user_id, role, name=full_name, custom={"student_id": name}, extra_roles=extra)
    platform.enrol("mentor-1", "Mentor", name="Pat Parent", custom={"student_id": "ckl-pat"})
    platform.enrol("no-account-1", "Learner", name="Nobody Here", custom={"student_id": "ckl-nobody"})
    platform.start()
    server = None
    try:
        # The launched people need an account too (LocalProcessSpawner); only ckl-tom logs in with a password.
        password = secrets.token_urlsafe(12)
        HUB_ACCOUNTS.create(base / "home", {PAM_INSTRUCTOR: password})
        h = LtiHub(base, hub_url, platform, tool_key, tool_public, password)
        subprocess.run(["make", "-s", "-C", str(ROOT), "exchange", f"EXCHANGE={base / 'exchange'}"], check=True)
        generate_assignment(new_course(h.course))
        subprocess.run(["chown", "-R", f"{GRADER}:{GRADER}", str(h.course)], check=True)
        h.course.chmod(0o700)
        config = shutil.copytree(ROOT / "jupyterhub", base / "etc", ignore=shutil.ignore_patterns("__pycache__"))
        state = base / "hub-state"
        state.mkdir(mode=0o700)
        log = base / "jupyterhub.log"
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               **h.site_env(), "COURSEKIT_FORMGRADER_PORT": str(free_port())}
        with log.open("w") as out:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config / "jupyterhub_config.py"),
                 f"--JupyterHub.bind_url={hub_url}", f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}",
                 f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}"],
                cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until_serving(f"{hub_url}/hub/health", server, log, timeout=120, name="jupyterhub")
        h.log = log  # type: ignore[attr-defined]
        yield h
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        platform.stop()
        try:
            HUB_ACCOUNTS.remove()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def hub_user(page, hub: LtiHub) -> dict:
    """The hub's model of the logged-in user (name, groups), from its REST API with the login cookie."""
    answer = page.goto(f"{hub.url}/hub/api/user")
    assert answer.status == 200, answer.text()
    return json.loads(answer.text())


@pytest.fixture(scope="module")
def launched(hub: LtiHub) -> Iterator[LtiHub]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = hub.browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for name, (user_id, *_) in LAUNCHED.items():
                page = browser.new_context().new_page()
                page.goto(hub.platform.launch_url(user_id))
                page.wait_for_url(f"{hub.url}/hub/home", timeout=60_000)
                page.screenshot(path=ARTIFACTS / f"lti-{name}-launched.png")
                hub.seen[name] = hub_user(page, hub)
                answer = page.goto(f"{hub.url}/services/{COURSE_ID}/formgrader/manage_students", timeout=120_000)
                hub.formgrader[name] = answer.status
            for user_id in ("mentor-1", "no-account-1"):
                page = browser.new_context().new_page()
                callback = f"{hub.url}/hub/lti13/oauth_callback"
                with page.expect_response(lambda r, url=callback: r.url.startswith(url), timeout=60_000) as answer:
                    page.goto(hub.platform.launch_url(user_id))
                hub.refused[user_id] = answer.value.status
            page = browser.new_context().new_page()  # the login page, as before LTI
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", PAM_INSTRUCTOR)
            page.fill("#password_input", hub.pam_password)
            page.click("#login_submit")
            page.wait_for_url(lambda url: "/hub/login" not in url, timeout=60_000)
            hub.seen[PAM_INSTRUCTOR] = hub_user(page, hub)
        except Exception as error:  # what the hub said about it
            raise AssertionError(f"{error}\n--- hub log:\n{hub.log.read_text()[-6000:]}") from error  # type: ignore[attr-defined]
        yield hub
        browser.close()


def test_each_launch_logs_in_the_student_id_from_the_lms(launched):
    assert {name: launched.seen[name]["name"] for name in LAUNCHED} == {name: name for name in LAUNCHED}


def test_lms_roles_become_the_hub_groups(launched):
    groups = {name: sorted(model["groups"]) for name, model in launched.seen.items()}
    assert groups == {**{s: [STUDENTS_GROUP] for s in STUDENTS},
                      "ckl-teacher": sorted([INSTRUCTORS_GROUP, FORMGRADERS]),
                      "ckl-ta": sorted([INSTRUCTORS_GROUP, FORMGRADERS]),
                      PAM_INSTRUCTOR: sorted([INSTRUCTORS_GROUP, FORMGRADERS])}


def test_the_lms_instructor_reaches_the_formgrader_and_students_do_not(launched):
    assert launched.formgrader == {**{s: 403 for s in STUDENTS}, "ckl-teacher": 200, "ckl-ta": 200}


def test_a_role_the_course_does_not_grade_and_a_person_without_an_account_are_refused(launched):
    assert launched.refused == {"mentor-1": 403, "no-account-1": 403}
    log = launched.log.read_text()  # type: ignore[attr-defined]
    assert "no Learner or Instructor role" in log and "no Unix account" in log


def test_the_launches_record_each_students_lti_user_id_and_name_in_the_gradebook(launched):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{launched.course / 'gradebook.db'}", COURSE_ID) as gb:
        recorded = {s.id: (s.lms_user_id, s.first_name, s.last_name) for s in gb.students}
    assert recorded == {name: (LAUNCHED[name][0], *LAUNCHED[name][2].split(" ")) for name in STUDENTS}


def test_the_graded_class_goes_back_to_the_lms_under_the_launched_ids(launched):
    for name in STUDENTS:
        submit(launched.course, name, solve(json.loads(RELEASE.read_text(encoding="utf-8")), LAUNCHED[name][3]),
               assignment=ASSIGNMENT)
    graded = subprocess.run([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT], cwd=launched.course,
                            env=nbgrader_env(), capture_output=True, text=True, timeout=600)
    assert graded.returncode == 0, graded.stderr[-3000:]
    push = [sys.executable, "-m", "coursekit", "lms", "push", ASSIGNMENT, "--credentials", str(launched.credentials())]
    done = subprocess.run(push, cwd=launched.course, env=nbgrader_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 sent, 0 already in the LMS, 0 not sent" in done.stdout
    results = lms_results(launched.platform, launched.tool_key, launched.tool_public)
    assert {user: score for user, (score, _, _) in results.items()} == \
        {LAUNCHED[name][0]: LAUNCHED[name][4] for name in STUDENTS}
    page = launched.browser.new_page(viewport={"width": 760, "height": 330})  # the LMS's gradebook, for README
    page.goto(f"{launched.platform.url}/gradebook")
    page.screenshot(path=ARTIFACTS / "lti-gradebook.png", full_page=True)
    if os.environ.get("COURSEKIT_UPDATE_SCREENSHOT"):  # `make screenshot`
        page.screenshot(path=README_SHOT, full_page=True)
