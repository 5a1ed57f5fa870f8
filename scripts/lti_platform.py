"""An LTI 1.3 platform (a stand-in LMS) on 127.0.0.1, for tests and demos: `lti1p3platform` served
by a small tornado app.

`lti1p3platform` (PyPI) implements the platform's side of LTI 1.3 as a library: the registration and
its keys, the JWKS, the OAuth 2 client-credentials token endpoint (it verifies the tool's signed
JWT against the tool's public key and signs the access token), the OIDC launch (it signs the
id_token with the platform's key) and the AGS handlers (token and scope checks, media types).  It
leaves the web framework and the storage to its user; this module adds those, and nothing of the
protocol: the routes, a course (its members and their roles), line items and scores in memory,
and what a real gradebook does with a score (refuse one for a user who is not a learner of the
course, keep the latest, scale the result to the line item's maximum).

    platform = Platform(tool_jwks={"keys": [...]}); platform.start()
    platform.enrol("u-1", "Learner", name="Ada Lovelace", custom={"student_id": "ada"})
    platform.launch_url("u-1")     # open it in a browser: OIDC login at the tool, then the launch
    ...; platform.stop()

Routes: /jwks, /token, /authorize (OIDC auth request), /launch?user=ID, /lineitems,
/lineitems/ID, /lineitems/ID/scores, /lineitems/ID/results and /gradebook (an HTML page of the
line items and each learner's result).
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import tornado.httpserver
import tornado.web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.exceptions import LineItemNotFoundException, LtiException, LtiServiceException
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest
from lti1p3platform.response import Response
from lti1p3platform.score import UpdateScoreStatus
from lti1p3platform.service_connector import AssignmentsGradesService, TPage

from scripts.pg_server import free_port

ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
CONTEXT_ID = "weight-init-2027"
RESOURCE_LINK = "weight-init-notebook"


def new_key() -> tuple[str, str]:
    """A fresh 2048-bit RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@dataclass
class Member:
    user_id: str
    role: str  # "Learner" or "Instructor" (LIS membership role)
    name: str = ""
    email: str = ""
    custom: dict[str, str] = field(default_factory=dict)


class TornadoRequest(Request):
    def build_metadata(self, request: tornado.httpserver.HTTPServerRequest) -> TRequest:
        args: dict[str, Any] = {k: v[-1].decode() for k, v in request.query_arguments.items()}
        for number in ("page", "limit"):  # lti1p3platform counts pages with them
            if number in args:
                args[number] = int(args[number])
        form = {k: v[-1].decode() for k, v in request.body_arguments.items()}
        is_json = "json" in request.headers.get("Content-Type", "")
        return {"method": request.method, "form_data": form, "get_data": args, "headers": request.headers,
                "content_type": request.headers.get("Content-Type"), "path": request.path,
                "json": json.loads(request.body or b"null") if is_json else None}


class PlatformConf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs: Any) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        assert self._registration is not None
        return self._registration


class Login(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs: Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


class Launch(LTIAdvantageMessageLaunchAbstract):
    """The launch of the course's one resource link, for the member the platform has logged in."""

    member: Member
    lineitems_url: str

    def prepare_launch(self, preflight_response: dict[str, Any]) -> None:
        m = self.member
        self.set_user_data(m.user_id, [ROLE + m.role], full_name=m.name or None, email_address=m.email or None)
        given, _, family = m.name.partition(" ")
        if family:
            self.set_extra_claims({"given_name": given, "family_name": family})
        self.set_resource_link_claim(RESOURCE_LINK, title="Weight initialization")
        self.set_launch_context_claim(CONTEXT_ID, context_title="Deep learning 2027", context_label="DL27")
        if m.custom:
            self.set_custom_parameters_claim(m.custom)
        self.set_ags(self.lineitems_url)

    def render_launch_form(self, launch_data: dict[str, Any], **kwargs: Any) -> str:
        """The form a browser posts to the tool at once (the OIDC form_post response mode)."""
        fields = "".join(f"<input type='hidden' name='{name}' value='{html.escape(launch_data[name], quote=True)}'>"
                         for name in ("id_token", "state"))
        return (f"<!DOCTYPE html><html><body onload='document.forms[0].submit()'>"
                f"<form method='post' action='{html.escape(launch_data['launch_url'], quote=True)}'>{fields}"
                f"<noscript><button>Continue</button></noscript></form></body></html>")


class Gradebook(AssignmentsGradesService):
    """The AGS storage: line items, and each user's latest score on each."""

    platform: Platform

    def find_lineitems(self, page: int = 1, limit: int | None = None, line_item_id: str | None = None,
                       resource_link_id: str | None = None, resource_id: str | None = None,
                       tag: str | None = None) -> TPage:
        items = [i for i in self.platform.lineitems.values()
                 if (resource_id is None or i.get("resourceId") == resource_id)
                 and (tag is None or i.get("tag") == tag)
                 and (resource_link_id is None or i.get("resourceLinkId") == resource_link_id)]
        return {"content": items, "has_next": False}

    def find_lineitem(self, line_item_id: str) -> Any:
        url = f"{self.platform.url}/lineitems/{line_item_id}"
        if url not in self.platform.lineitems:
            raise LineItemNotFoundException()
        return self.platform.lineitems[url]

    def create_lineitem(self, creation_data: Any) -> Any:
        if not isinstance(creation_data, dict) or not creation_data.get("label") \
                or not float(creation_data.get("scoreMaximum") or 0) > 0:
            raise LtiServiceException("a line item needs a label and a positive scoreMaximum", 400)
        url = f"{self.platform.url}/lineitems/{len(self.platform.lineitems) + 1}"
        item = {**creation_data, "id": url}
        self.platform.lineitems[url] = item
        return item

    def update_lineitem(self, update_data: Any) -> Any:
        raise LtiServiceException("not supported", 405)

    def delete_lineitem(self, line_item_id: str) -> None:
        raise LtiServiceException("not supported", 405)

    def update_score(self, line_item_id: str, score: Any) -> UpdateScoreStatus:
        item = self.find_lineitem(line_item_id)
        if not isinstance(score, dict):
            raise LtiServiceException("the score must be a JSON object", 400)
        missing = [k for k in ("userId", "activityProgress", "gradingProgress", "timestamp") if k not in score]
        if missing:
            raise LtiServiceException(f"the score lacks {', '.join(missing)}", 400)
        member = self.platform.members.get(str(score["userId"]))
        if member is None or member.role != "Learner":
            raise LtiServiceException(f"user {score['userId']} is not a learner in this course", 422)
        key = (item["id"], member.user_id)
        when = datetime.fromisoformat(score["timestamp"].replace("Z", "+00:00"))
        previous = self.platform.scores.get(key)
        if previous and when <= datetime.fromisoformat(previous["timestamp"].replace("Z", "+00:00")):
            return UpdateScoreStatus.OLD_TIMESTAMP  # AGS: never older than the one kept
        self.platform.scores[key] = score
        self.platform.received.append((item["id"], dict(score)))
        return UpdateScoreStatus.SUCCESS if previous else UpdateScoreStatus.CREATED

    def result(self, item: dict[str, Any], user_id: str) -> dict[str, Any] | None:
        score = self.platform.scores.get((item["id"], user_id))
        if score is None or score.get("scoreGiven") is None:
            return None
        top = float(item["scoreMaximum"])
        return {"id": f"{item['id']}/results/{user_id}", "scoreOf": item["id"], "userId": user_id,
                "resultScore": float(score["scoreGiven"]) * top / float(score["scoreMaximum"]),
                "resultMaximum": top, "comment": score.get("comment")}

    def get_results(self, line_item_id: str, page: int = 1, limit: int | None = None,
                    user_id: str | None = None) -> TPage:
        item = self.find_lineitem(line_item_id)
        users = [user_id] if user_id else list(self.platform.members)
        results = [r for r in (self.result(item, u) for u in users) if r]
        # Two per page, so a tool must follow the Link header as it would on a big class.
        start = (int(page) - 1) * 2
        return {"content": results[start:start + 2], "has_next": start + 2 < len(results)}


class Platform:
    """The platform, its course and gradebook; `start` serves it on 127.0.0.1 in a thread."""

    def __init__(self, tool_jwks: dict[str, Any] | None = None, hub_url: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = "coursekit-" + secrets.token_hex(4)
        self.deployment_id = "1"
        self.private_key, self.public_key = new_key()
        self.members: dict[str, Member] = {}
        self.lineitems: dict[str, dict[str, Any]] = {}
        self.scores: dict[tuple[str, str], dict[str, Any]] = {}
        self.received: list[tuple[str, dict[str, Any]]] = []  # every score accepted, in order
        self.token_requests = 0
        self.tool_jwks = tool_jwks or {"keys": []}
        self.hub_url = hub_url
        self._server: tornado.httpserver.HTTPServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- what the LMS admin types in when registering the tool
    def registration(self) -> Registration:
        hub = f"{self.hub_url}/hub"
        return (Registration().set_iss(self.url).set_client_id(self.client_id)
                .set_deployment_id(self.deployment_id).set_launch_url(f"{hub}/home")
                .set_oidc_login_url(f"{hub}/lti13/oauth_login").set_tool_key_set(self.tool_jwks)
                .set_platform_public_key(self.public_key).set_platform_private_key(self.private_key))

    def conf(self) -> PlatformConf:
        return PlatformConf(registration=self.registration())

    @property
    def lineitems_url(self) -> str:
        return f"{self.url}/lineitems"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def enrol(self, user_id: str, role: str, name: str = "", email: str = "",
              custom: dict[str, str] | None = None) -> None:
        self.members[user_id] = Member(user_id, role, name, email, custom or {})

    def launch_url(self, user_id: str) -> str:
        return f"{self.url}/launch?{urlencode({'user': user_id})}"

    def results(self, lineitem_url: str) -> dict[str, dict[str, Any]]:
        """userId -> result, as the results endpoint would give them (for tests: read through AGS)."""
        service = self._gradebook(None)
        item = self.lineitems[lineitem_url]
        return {u: r for u in self.members if (r := service.result(item, u))}

    def _gradebook(self, request: Request | None) -> Gradebook:
        service = Gradebook(request, self.conf(), self.lineitems_url)  # type: ignore[arg-type]
        service.platform = self
        return service

    # --- serving
    def app(self) -> tornado.web.Application:
        platform = self

        class Base(tornado.web.RequestHandler):
            def check_xsrf_cookie(self) -> None:  # the tool posts cross-site, as LTI does
                return

            def send(self, response: Response) -> None:
                self.set_status(response.code)
                self.set_header("Content-Type", response.media_type)
                body = response.result
                if isinstance(body, dict) and "content" in body:  # a page of a collection
                    if body.get("has_next"):
                        page = int(self.get_argument("page", "1")) + 1
                        self.set_header("Link", f'<{self.request.full_url().split("?")[0]}?page={page}>; rel="next"')
                    body = body["content"]
                if body is None and response.code >= 400:
                    body = {"error": response.message}
                if body is not None:
                    self.write(json.dumps(body))

        class Jwks(Base):
            def get(self) -> None:
                conf = platform.conf()
                conf.get_registration()
                self.write(conf.get_jwks())

        class Token(Base):
            def post(self) -> None:
                platform.token_requests += 1
                form = {k: self.get_body_argument(k) for k in self.request.body_arguments}
                try:
                    token = platform.conf().get_access_token(form)
                except Exception as error:  # a refused or malformed client assertion
                    self.set_status(401 if not isinstance(error, KeyError) else 400)
                    self.write({"error": "invalid_client", "error_description": str(error) or type(error).__name__})
                    return
                self.write(token)

        class LaunchStart(Base):
            """The LMS user clicks the link: the platform starts the OIDC login at the tool."""

            def get(self) -> None:
                user = self.get_argument("user")
                if user not in platform.members:
                    raise tornado.web.HTTPError(404)
                self.set_cookie("platform_user", user)  # the platform's own session
                login = Login(self.request, platform.conf())
                login.set_lti_message_hint(hint=RESOURCE_LINK)
                self.redirect(login.initiate_login(user))

        class Authorize(Base):
            """The tool's OIDC authentication request: sign the launch for the logged-in user."""

            def get(self) -> None:
                request = TornadoRequest(self.request)
                user = self.get_cookie("platform_user")
                params = request.get_data or request.form_data
                expected = f"{platform.hub_url}/hub/lti13/oauth_callback"
                if not user or params.get("login_hint") != user or params.get("redirect_uri") != expected:
                    raise tornado.web.HTTPError(403, "login_hint or redirect_uri does not match")
                launch = Launch(request, platform.conf())
                launch.member = platform.members[user]
                launch.lineitems_url = platform.lineitems_url
                try:
                    self.write(launch.lti_launch())
                except LtiException as error:
                    raise tornado.web.HTTPError(400, str(error)) from None

            post = get

        class LineItems(Base):
            def get(self) -> None:
                service = platform._gradebook(TornadoRequest(self.request))
                self.send(service.handle_resp(service.handle_get_lineitems))

            def post(self) -> None:
                service = platform._gradebook(TornadoRequest(self.request))
                self.send(service.handle_resp(service.handle_create_lineitem))

        class LineItem(Base):
            def get(self, item: str) -> None:
                service = platform._gradebook(TornadoRequest(self.request))
                self.send(service.handle_resp(service.handle_get_lineitem, line_item_id=item))

        class Scores(Base):
            def post(self, item: str) -> None:
                service = platform._gradebook(TornadoRequest(self.request))
                self.send(service.handle_resp(service.handle_update_score, line_item_id=item))

        class Results(Base):
            def get(self, item: str) -> None:
                service = platform._gradebook(TornadoRequest(self.request))
                self.send(service.handle_resp(service.handle_get_results, line_item_id=item))

        class GradebookPage(Base):
            def get(self) -> None:
                items = list(platform.lineitems.values())
                learners = [m for m in platform.members.values() if m.role == "Learner"]
                esc = html.escape
                head = "".join(f"<th>{esc(i['label'])}<br><small>out of {float(i['scoreMaximum']):g}</small></th>"
                               for i in items)
                rows = []
                for m in learners:
                    cells = []
                    for i in items:
                        r = platform._gradebook(None).result(i, m.user_id)
                        cells.append(f"<td>{r['resultScore']:g}<br><small>{esc(r.get('comment') or '')}</small></td>"
                                     if r else "<td>–</td>")
                    rows.append(f"<tr><td>{esc(m.name or m.user_id)}<br><small>{esc(m.user_id)}</small></td>"
                                f"{''.join(cells)}</tr>")
                self.write("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Gradebook</title><style>"
                           "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                           "td,th{border:1px solid #bbb;padding:.4em .8em;text-align:left}small{color:#666}"
                           f"</style></head><body><h1>Gradebook: Deep learning 2027</h1><table><tr><th>Student</th>"
                           f"{head}</tr>{''.join(rows)}</table></body></html>")

        return tornado.web.Application([
            (r"/jwks", Jwks), (r"/token", Token), (r"/launch", LaunchStart), (r"/authorize", Authorize),
            (r"/lineitems", LineItems), (r"/lineitems/([0-9]+)", LineItem),
            (r"/lineitems/([0-9]+)/scores", Scores), (r"/lineitems/([0-9]+)/results", Results),
            (r"/gradebook", GradebookPage),
        ])

    def start(self) -> Platform:
        """Serve on 127.0.0.1:port in a thread (again after `stop`, with the same course and grades)."""
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = tornado.httpserver.HTTPServer(self.app())
            self._server.listen(self.port, address="127.0.0.1")
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="lti-platform", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop serving (the LMS is down); the course and its gradebook stay in memory."""
        if self._loop is None or self._thread is None:
            return
        loop, server = self._loop, self._server

        async def close() -> None:
            assert server is not None
            server.stop()
            await server.close_all_connections()
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        self._thread.join(10)
        self._loop = self._thread = self._server = None
