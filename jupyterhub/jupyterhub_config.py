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

Ports of the hub itself are JupyterHub's own options (`--JupyterHub.bind_url`, ...).
"""

import grp
import os
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

# --- Logging in -------------------------------------------------------------------------------------
# Unix accounts and their passwords (PAM, JupyterHub's default), limited to the course's two groups.
# The grader account belongs to neither, so nobody logs in as it.  For a real class, log in through
# the university instead and keep the same groups: OAuthenticator (GitHub, Google, any OpenID Connect
# provider; `pip install oauthenticator`, c.JupyterHub.authenticator_class = "generic-oauth") or,
# from an LMS (Moodle, Canvas), `jupyterhub-ltiauthenticator`.  With LocalProcessSpawner every hub
# user still needs a Unix account of the same name: that is what keeps students apart.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {STUDENTS_GROUP, INSTRUCTORS_GROUP}

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
    role = "instructor" if spawner.user.name in INSTRUCTORS else "student"
    spawner.environment = {**spawner.environment, "JUPYTER_CONFIG_PATH": str(HERE / role)}


c.Spawner.pre_spawn_hook = choose_tools

# --- The formgrader, shared by the instructors ------------------------------------------------------
# One Jupyter server that runs as the grader account in the course folder, as a hub service named
# after the course (nbgrader's "one class, several graders" setup).  Instructors reach it through the
# hub at /services/weight-init/formgrader; the gradebook URL never leaves this process.
c.JupyterHub.services = [
    {
        "name": COURSE_ID,
        "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
        "command": [str(USER_ENV / "bin" / "jupyterhub-singleuser")],
        "user": GRADER,
        "cwd": COURSE_DIR,
        "environment": {
            "PATH": f"{USER_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",  # nbgrader runs `alembic`
            "COURSEKIT_EXCHANGE": EXCHANGE,
            **({"COURSEKIT_GRADEBOOK": os.environ["COURSEKIT_GRADEBOOK"]}
               if "COURSEKIT_GRADEBOOK" in os.environ else {}),
            "JUPYTERHUB_DEFAULT_URL": "/formgrader",
        },
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
# only keeps it running.  Instructors read where it stands with `coursekit status` in the course folder.
c.JupyterHub.services.append(
    {
        "name": f"{COURSE_ID}-grading",
        "command": [str(USER_ENV / "bin" / "python"), "-m", "coursekit", "serve", "--course-dir", COURSE_DIR],
        "cwd": COURSE_DIR,
        "environment": {
            "PATH": f"{USER_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "COURSEKIT_EXCHANGE": EXCHANGE,
            **({"COURSEKIT_GRADEBOOK": os.environ["COURSEKIT_GRADEBOOK"]}
               if "COURSEKIT_GRADEBOOK" in os.environ else {}),
        },
    }
)

# Only the instructors' group may open it: a role with `access:services!service=weight-init`.  The
# other two scopes let the Course List in an instructor's JupyterLab find the service.  Everyone else
# keeps the default `user` role, which reaches only their own server: the hub answers 403 Forbidden
# to a student who opens the formgrader or an instructor's server.
c.JupyterHub.load_groups = {FORMGRADERS: {"users": sorted(INSTRUCTORS)}}
c.JupyterHub.load_roles = [
    {
        "name": FORMGRADERS,
        "groups": [FORMGRADERS],
        "scopes": [f"access:services!service={COURSE_ID}", "list:services",
                   f"read:services!service={COURSE_ID}"],
    },
    # A server's own token may do what its owner may (the instructor's Course List asks the hub).
    {"name": "server", "scopes": ["inherit"]},
]
