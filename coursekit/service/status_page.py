"""The grading service's page for instructors, through the hub (`coursekit status --hub-service`).

What `coursekit status` prints (queue, graded, held, failures with their reasons, submit-to-feedback
latency), as one HTML page that JupyterHub serves at /services/<course>-status/ to the accounts its
role allows: jupyterhub/jupyterhub_config.py gives `access:services!service=weight-init-status` to
the instructors' group only, and the hub answers 403 to anyone else.

Its own small hub service, not a port of `coursekit serve`:

  * it runs as the grader account, not root.  `coursekit serve` must be root for its sandbox
    (SECURITY.md); a web server that parses requests from the whole hub has no need for root, so
    it does not get it.  It reads the service's journal, which `coursekit serve` hands to the
    course folder's owner, read-only: it can change nothing the service does.
  * it has no state of its own: every request reads the journal afresh (`status.status`), so it
    shows the truth after the grading service was killed with SIGKILL and restarted, and it can
    itself be killed and restarted at any moment (the hub restarts both).
  * a slow or stuck page never delays a grade, and the grading loop has no web code in it.

Authentication is JupyterHub's own: `HubOAuthenticated` handlers and `HubOAuthCallbackHandler`
(jupyterhub.services.auth), the documented way for a tornado service.  The access scope comes from
the hub ($JUPYTERHUB_OAUTH_ACCESS_SCOPES), so who may open the page is decided in one place, the
hub's roles.  A refused user gets 403 from the hub's OAuth step or from the handler.

Failure reasons and submission names can carry a student's text (an inbound folder's name is
chosen by whoever submits): the page is rendered by Jinja2 with autoescape, every string first
passes through `coursekit.printable` (control and bidirectional characters shown escaped), and
the page has a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import jinja2

from ..printable import printable
from ..read import CourseError, load_course
from .status import Status, status

__all__ = ["render", "serve_page"]

REFRESH_SECONDS = 10

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{ refresh }}">
<title>Grading service: {{ course }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #ddd; padding: .35rem .7rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #a31515; } .note { color: #555; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; font-size: .9rem; }
</style></head><body>
<h1>Grading service: {{ course }}</h1>
<p class="note">Read from the service's journal at {{ now }} (this page reloads every {{ refresh }} s). Signed in as {{ user }}.</p>
{% if problem %}<p class="bad" id="problem">{{ problem }}</p>{% else %}
<table id="counts">
<tr><th>Waiting to be graded (queue)</th><td class="n" id="waiting">{{ counts.get("waiting", 0) }}</td></tr>
<tr><th>Graded</th><td class="n" id="graded">{{ counts.get("graded", 0) }}</td></tr>
<tr><th>Held over the hourly limit</th><td class="n" id="held">{{ counts.get("held", 0) }}</td></tr>
<tr><th>Failed</th><td class="n {{ 'bad' if counts.get('failed', 0) }}" id="failed">{{ counts.get("failed", 0) }}</td></tr>
<tr><th>Feedback pages released</th><td class="n" id="pages">{{ pages }}</td></tr>
</table>
<h2>Submit to feedback</h2>
<table id="latency"><tr><th></th><th>p50</th><th>p95</th><th>max</th><th>submissions</th></tr>
{% for label, lat in latencies %}<tr><th>{{ label }}</th><td class="n">{{ "%.1f"|format(lat.p50) }} s</td>
<td class="n">{{ "%.1f"|format(lat.p95) }} s</td><td class="n">{{ "%.1f"|format(lat.max) }} s</td>
<td class="n">{{ "%d"|format(lat.count) }}</td></tr>{% endfor %}
</table>
<h2>Failures, newest first</h2>
{% if failures %}<table id="failures"><tr><th>Submission</th><th>Reason</th></tr>
{% for name, reason in failures %}<tr><td>{{ name }}</td><td><pre>{{ reason }}</pre></td></tr>{% endfor %}
</table>{% else %}<p id="failures">None.</p>{% endif %}
{% endif %}
</body></html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                         finalize=lambda value: printable(value, keep="\n\t") if isinstance(value, str) else value)
_PAGE = _ENV.from_string(_TEMPLATE)
# No script, style only inline, nothing loaded from anywhere: even text that escaped escaping could
# not run.  frame-ancestors: the page is not framed by another origin.
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def render(course: str, user: str, state: Status | str) -> bytes:
    """The page for `state`, or for why there is none (a sentence)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    common = {"course": course, "user": user, "now": now, "refresh": REFRESH_SECONDS}
    if isinstance(state, str):
        return _PAGE.render(problem=state, **common).encode("utf-8")
    return _PAGE.render(problem=None, counts=state.counts, pages=state.pages,
                        latencies=[("last hour", state.latency), ("since the journal began", state.latency_all)],
                        failures=state.failures, **common).encode("utf-8")


def _read(course_dir: Path) -> Status | str:
    try:
        return status(course_dir=course_dir)
    except CourseError as error:
        return str(error)
    except Exception as error:  # e.g. the journal locked for longer than its timeout: say so, keep serving
        return f"the journal could not be read just now ({type(error).__name__}: {error}); reload in a moment"


def serve_page(*, course_dir: Path | str = ".") -> None:
    """Serve the page as a JupyterHub service until SIGTERM: reads the JUPYTERHUB_SERVICE_* variables
    the hub sets for a managed service (CourseError without them)."""
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado.httpserver import HTTPServer
    from tornado.web import Application, RedirectHandler, RequestHandler, authenticated

    missing = [v for v in ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_API_TOKEN")
               if not os.environ.get(v)]
    if missing:
        raise CourseError(f"`coursekit status --hub-service` runs as a JupyterHub service ({', '.join(missing)} "
                          "not set); declare it in jupyterhub_config.py (README, JupyterHub classes), or run "
                          "`coursekit status` for the same in a terminal")
    root = Path(course_dir).resolve()
    course = _course_id(root)

    class StatusHandler(HubOAuthenticated, RequestHandler):
        @authenticated
        async def get(self) -> None:
            state = await asyncio.to_thread(_read, root)  # SQLite blocks; the loop keeps serving
            user = (self.current_user or {}).get("name", "?")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Content-Security-Policy", CSP)
            self.set_header("Cache-Control", "no-store")
            self.set_header("X-Content-Type-Options", "nosniff")
            self.finish(render(course, user, state))

    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    # A new secret at each start: after a restart the browser's cookie no longer opens the page and
    # the hub signs the user in again (no prompt); nothing to keep on disk.
    app = Application([(prefix, StatusHandler),
                       (prefix.rstrip("/"), RedirectHandler, {"url": prefix}),
                       (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)],
                      cookie_secret=os.urandom(32))
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])

    async def main() -> None:
        HTTPServer(app).listen(url.port or 80, url.hostname or "127.0.0.1")
        await asyncio.Event().wait()  # until SIGTERM ends the process

    asyncio.run(main())


def _course_id(root: Path) -> str:
    try:
        return load_course(root).course_id
    except CourseError:
        return root.name
