"""JupyterHub for the weight-initialization course: one hub, one course, nbgrader's folder exchange.

This is the configuration `tests/test_hub_class.py` runs (README, "JupyterHub classes"): every
site-specific value comes from an environment variable, with the default a standard install would
use, so the test and a real hub read the same file.

    jupyterhub -f /etc/jupyterhub/weight-init/jupyterhub_config.py    # as root, see README

Who is who comes from Unix accounts and groups on the hub machine:

    COURSEKIT_STUDENTS_GROUP     Unix group of the students        (default: weight-init-students)
    COURSEKIT_INSTRUCTORS_GROUP  Unix group of the instructors     (default: weight-init-instructors)
    COURSEKIT_GRADER             Unix account that owns the course (default: grader-weight-init)

and where things are, from:

    COURSEKIT_COURSE_DIR         the course folder, a clone of this repository owned by the grader
                                 account, mode 700              (default: /srv/nbgrader/weight-init)
    COURSEKIT_EXCHANGE           the exchange, `make exchange`  (default: /srv/nbgrader/exchange)
    COURSEKIT_GRADEBOOK          SQLAlchemy URL of the gradebook, e.g.
                                 postgresql+psycopg2://grader:PASSWORD@db-host/weight_init
                                 (default: SQLite in the course folder)
    COURSEKIT_USER_ENV           the Python environment single-user servers run from, with this kit,
                                 JupyterHub and psycopg2 installed (default: /opt/weight-init-hub,
                                 `make hub-env`)
    COURSEKIT_FORMGRADER_PORT    port of the formgrader service on 127.0.0.1 (default: 9999)
    COURSEKIT_STATUS_PORT        port of the grading service's page on 127.0.0.1 (default: 9998)

Launches from an LMS over LTI 1.3 (README, "Grades in your LMS"), beside the login page, when
COURSEKIT_LTI_ISSUER is set; the values come from the LMS's registration of the tool:

    COURSEKIT_LTI_ISSUER         the platform's issuer, e.g. https://canvas.instructure.com
    COURSEKIT_LTI_CLIENT_ID      the client id the LMS gave the tool (several: separated by commas)
    COURSEKIT_LTI_AUTHORIZE_URL  the platform's OIDC authentication request URL
    COURSEKIT_LTI_JWKS_URL       the platform's public keyset URL
    COURSEKIT_LTI_USERNAME_KEY   the launch claim that holds the hub user name, which is the nbgrader
                                 student id (default: custom_student_id, a custom parameter of the
                                 tool; "sub" is the LTI user id itself)

Ports of the hub itself are JupyterHub's own options (`--JupyterHub.bind_url`, ...).
"""

import asyncio
import grp
import os
import pwd
from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when JupyterHub loads this file)

HERE = Path(__file__).resolve().parent
COURSE_ID = "weight-init"  # nbgrader's course id; the formgrader service must carry the same name
COURSE_DIR = os.environ.get("COURSEKIT_COURSE_DIR", "/srv/nbgrader/weight-init")
EXCHANGE = os.environ.get("COURSEKIT_EXCHANGE", "/srv/nbgrader/exchange")
USER_ENV = Path(os.environ.get("COURSEKIT_USER_ENV", "/opt/weight-init-hub"))
GRADER = os.environ.get("COURSEKIT_GRADER", "grader-weight-init")
STUDENTS_GROUP = os.environ.get("COURSEKIT_STUDENTS_GROUP", "weight-init-students")
INSTRUCTORS_GROUP = os.environ.get("COURSEKIT_INSTRUCTORS_GROUP", "weight-init-instructors")
FORMGRADER_PORT = int(os.environ.get("COURSEKIT_FORMGRADER_PORT", "9999"))
STATUS_PORT = int(os.environ.get("COURSEKIT_STATUS_PORT", "9998"))
# nbgrader's course list finds the formgrader of course X through a hub group named formgrade-X.
FORMGRADERS = f"formgrade-{COURSE_ID}"


def members(group: str) -> set[str]:
    """Accounts listed in a Unix group (as a supplementary group: `usermod -aG GROUP USER`)."""
    try:
        return set(grp.getgrnam(group).gr_mem)
    except KeyError:
        raise SystemExit(f"jupyterhub_config.py: there is no Unix group {group!r}; create it "
                         f"(groupadd {group}) or name another one in the environment") from None


# Read when the hub starts: restart it after adding an instructor to the group.
INSTRUCTORS = members(INSTRUCTORS_GROUP)
LTI_ISSUER = os.environ.get("COURSEKIT_LTI_ISSUER", "")
GRADEBOOK = os.environ.get("COURSEKIT_GRADEBOOK", f"sqlite:///{COURSE_DIR}/gradebook.db")

# --- Logging in -------------------------------------------------------------------------------------
# Unix accounts and their passwords (PAM, JupyterHub's default), limited to the course's two groups.
# The grader account belongs to neither, so nobody logs in as it.  For a real class, log in through
# the university instead and keep the same groups: OAuthenticator (GitHub, Google, any OpenID Connect
# provider; `pip install oauthenticator`, c.JupyterHub.authenticator_class = "generic-oauth") or,
# from an LMS (Moodle, Canvas), `jupyterhub-ltiauthenticator`.  With LocalProcessSpawner every hub
# user still needs a Unix account of the same name: that is what keeps students apart.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {STUDENTS_GROUP, INSTRUCTORS_GROUP}

# --- Launching from the LMS (LTI 1.3), beside the login page -----------------------------------------
# jupyterhub-ltiauthenticator checks the launch (the platform's signed id_token, state and nonce);
# the class below adds its two routes to the PAM login and turns the launch's course roles into the
# hub groups: Instructor and TeachingAssistant -> the instructors' group and formgrade-weight-init,
# Learner -> the students' group; any other role (Mentor, ...) is refused.  The hub user name, which
# is the nbgrader student id, comes from COURSEKIT_LTI_USERNAME_KEY; the LTI user id ("sub", what the
# LMS's gradebook knows the student by) is written to the nbgrader gradebook as the student's
# lms_user_id, which `coursekit lms push` sends scores to.  Each launched person still needs a Unix
# account of that name (LocalProcessSpawner); one without is refused, and the hub log says so.
LIS_MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
ROLES_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/roles"
INSTRUCTOR_ROLES, LEARNER_ROLES = {"Instructor", "TeachingAssistant"}, {"Learner"}


def course_groups(roles: list[str]) -> list[str]:
    """The hub groups of a person with these LTI roles in the course.  Only context (membership)
    roles count, in full or short form: an institution role says nothing about this course."""
    names = {role.rsplit("#", 1)[-1] for role in roles
             if role.startswith((LIS_MEMBERSHIP + "#", LIS_MEMBERSHIP + "/")) or ("/" not in role and "#" not in role)}
    if names & INSTRUCTOR_ROLES:
        return [INSTRUCTORS_GROUP, FORMGRADERS]
    return [STUDENTS_GROUP] if names & LEARNER_ROLES else []


def unix_groups(name: str) -> list[str]:
    """The hub groups of someone who logged in with a Unix password (the Unix groups decide)."""
    return [INSTRUCTORS_GROUP, FORMGRADERS] if name in INSTRUCTORS else [STUDENTS_GROUP]


if LTI_ISSUER:
    from jupyterhub.auth import Authenticator, LocalAuthenticator, PAMAuthenticator
    from ltiauthenticator.lti13.auth import LTI13Authenticator
    from ltiauthenticator.lti13.handlers import LTI13CallbackHandler, LTI13LoginInitHandler

    class CourseAuthenticator(PAMAuthenticator, LTI13Authenticator):
        """PAM's login page, plus LTI13Authenticator's launch routes and launch checks."""

        login_service = ""  # the login page keeps its user name and password form

        def login_url(self, base_url):
            return Authenticator.login_url(self, base_url)

        def get_handlers(self, app):
            return [*PAMAuthenticator.get_handlers(self, app),
                    (LTI13Authenticator.login_url(self, ""), LTI13LoginInitHandler),
                    (self.callback_url(""), LTI13CallbackHandler)]

        async def authenticate(self, handler, data=None):
            if isinstance(handler, LTI13CallbackHandler):  # a launch: `data` is the checked id_token
                model = await LTI13Authenticator.authenticate(self, handler, data)
                model["groups"] = course_groups(data.get(ROLES_CLAIM, []))
                return model
            name = await PAMAuthenticator.authenticate(self, handler, data)
            return {"name": name, "groups": unix_groups(name)} if name else None

        def check_allowed(self, username, authentication=None):
            if authentication and ROLES_CLAIM in (authentication.get("auth_state") or {}):
                if not authentication.get("groups"):
                    self.log.warning("LTI launch of %s refused: no Learner or Instructor role in the course", username)
                    return False
                try:
                    pwd.getpwnam(username)
                except KeyError:
                    self.log.warning("LTI launch of %s refused: the hub has no Unix account of that name "
                                     "(useradd it)", username)
                    return False
                return True
            return LocalAuthenticator.check_allowed(self, username, authentication)

    async def record_lms_user(authenticator, handler, auth_model):
        """Write a launched student's LTI user id (and name) to the nbgrader gradebook.

        In a thread, with a time limit: the hub serves everyone from one event loop, and a gradebook
        that is busy (SQLite locked by a grader) must not stall it."""
        claims = auth_model.get("auth_state") or {}
        if ROLES_CLAIM in claims and STUDENTS_GROUP in auth_model.get("groups", []):
            def write():
                from nbgrader.api import Gradebook

                with Gradebook(GRADEBOOK, COURSE_ID) as gb:
                    gb.update_or_create_student(auth_model["name"], lms_user_id=claims["sub"],
                                                first_name=claims.get("given_name"),
                                                last_name=claims.get("family_name"), email=claims.get("email"))

            try:
                await asyncio.wait_for(asyncio.to_thread(write), timeout=30)
            except Exception as error:  # the launch still works; `coursekit lms push` would name the student
                authenticator.log.error("could not record the LTI user id of %s in the gradebook (%s: %s); "
                                        "the next launch tries again", auth_model["name"], type(error).__name__, error)
        return auth_model

    c.JupyterHub.authenticator_class = CourseAuthenticator
    c.LTI13Authenticator.issuer = LTI_ISSUER
    c.LTI13Authenticator.client_id = set(os.environ.get("COURSEKIT_LTI_CLIENT_ID", "").split(","))
    c.LTI13Authenticator.authorize_url = os.environ.get("COURSEKIT_LTI_AUTHORIZE_URL", "")
    c.LTI13Authenticator.jwks_endpoint = os.environ.get("COURSEKIT_LTI_JWKS_URL", "")
    c.LTI13Authenticator.username_key = os.environ.get("COURSEKIT_LTI_USERNAME_KEY", "custom_student_id")
    c.Authenticator.post_auth_hook = record_lms_user
    # Groups now come with each login (both kinds), so the hub does not load them from this file.
    c.Authenticator.manage_groups = True

# --- Each person's own server -----------------------------------------------------------------------
# LocalProcessSpawner starts `jupyterhub-singleuser` as the person's own Unix account, in their home
# (mode 700): students cannot read each other's files, and nbgrader's exchange names a submission
# after the account that made it.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(USER_ENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120  # JupyterLab's first start on a busy 2-core machine takes a while
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    "PATH": f"{USER_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    "COURSEKIT_EXCHANGE": EXCHANGE,
}


def choose_tools(spawner) -> None:
    """Students get the student tools only; instructors keep every nbgrader tool.

    The folder put on JUPYTER_CONFIG_PATH holds the nbgrader configuration (course id, exchange) and,
    for students, turns off the Formgrader, Create Assignment and Course List extensions (server and
    JupyterLab side), leaving the Assignments list and the Validate button.
    """
    in_groups = {group.name for group in spawner.user.groups}
    role = "instructor" if spawner.user.name in INSTRUCTORS or FORMGRADERS in in_groups else "student"
    spawner.environment = {**spawner.environment, "JUPYTER_CONFIG_PATH": str(HERE / role)}


c.Spawner.pre_spawn_hook = choose_tools

# --- The formgrader, shared by the instructors ------------------------------------------------------
# One Jupyter server that runs as the grader account in the course folder, as a hub service named
# after the course (nbgrader's "one class, several graders" setup).  Instructors reach it through the
# hub at /services/weight-init/formgrader; the gradebook URL never leaves this process.
# The environment of the course's three services (formgrader, grading service, status page).
COURSE_ENV = {
    "PATH": f"{USER_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",  # nbgrader runs `alembic`
    "COURSEKIT_EXCHANGE": EXCHANGE,
    **({"COURSEKIT_GRADEBOOK": os.environ["COURSEKIT_GRADEBOOK"]} if "COURSEKIT_GRADEBOOK" in os.environ else {}),
}
c.JupyterHub.services = [
    {
        "name": COURSE_ID,
        "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
        "command": [str(USER_ENV / "bin" / "jupyterhub-singleuser")],
        "user": GRADER,
        "cwd": COURSE_DIR,
        "environment": {**COURSE_ENV, "JUPYTERHUB_DEFAULT_URL": "/formgrader"},
        "oauth_no_confirm": True,
    }
]

# --- The grading service: feedback seconds after Submit (README, "Feedback seconds after Submit") ----
# `coursekit serve` watches the exchange's inbound folder, grades each submission as `coursekit
# autograde` would and releases its feedback through the exchange; its policy (hidden tests before the
# due date, the hourly limit, polling on NFS) is c.Serve.* in the course's nbgrader_config.py.  It runs
# in the course folder with the formgrader's environment.  It is started as the hub's own user
# (root), not as the grader account: coursekit's sandbox needs root to give each submission its own
# namespaces and uid (SECURITY.md), exactly as `coursekit autograde` does.  Not a web service: the hub
# only keeps it running.  Where it stands is the next service's page (or `coursekit status`, run as the
# grader account in the course folder).
c.JupyterHub.services.append(
    {
        "name": f"{COURSE_ID}-grading",
        "command": [str(USER_ENV / "bin" / "python"), "-m", "coursekit", "serve", "--course-dir", COURSE_DIR],
        "cwd": COURSE_DIR,
        "environment": COURSE_ENV,
    }
)

# --- Where the grading service stands: a page for instructors, /services/weight-init-status/ ---------
# Queue, graded, held, failures with their reasons, submit-to-feedback latency: what `coursekit status`
# prints, read from the service's journal on every request (coursekit/service/status_page.py).  A
# separate service so that the web server runs as the grader account, not as root like the grader.
STATUS_SERVICE = f"{COURSE_ID}-status"
c.JupyterHub.services.append(
    {
        "name": STATUS_SERVICE,
        "url": f"http://127.0.0.1:{STATUS_PORT}",
        "command": [str(USER_ENV / "bin" / "python"), "-m", "coursekit", "status", "--hub-service",
                    "--course-dir", COURSE_DIR],
        "user": GRADER,
        "cwd": COURSE_DIR,
        "environment": COURSE_ENV,
        "oauth_no_confirm": True,
    }
)

# Only the instructors' group may open the formgrader and the status page: a role with
# `access:services!service=weight-init` and `access:services!service=weight-init-status`.  The
# other two scopes let the Course List in an instructor's JupyterLab find the formgrader.  Everyone
# else keeps the default `user` role, which reaches only their own server: the hub answers 403
# Forbidden to a student who opens the formgrader, the status page or an instructor's server.
if not LTI_ISSUER:  # with LTI, each login brings its groups (above)
    c.JupyterHub.load_groups = {FORMGRADERS: {"users": sorted(INSTRUCTORS)}}
c.JupyterHub.load_roles = [
    {
        "name": FORMGRADERS,
        "groups": [FORMGRADERS],
        "scopes": [f"access:services!service={COURSE_ID}", "list:services",
                   f"read:services!service={COURSE_ID}", f"access:services!service={STATUS_SERVICE}"],
    },
    # A server's own token may do what its owner may (the instructor's Course List asks the hub).
    {"name": "server", "scopes": ["inherit"]},
]
