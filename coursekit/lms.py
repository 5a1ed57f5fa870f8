"""Grades into the LMS over LTI Advantage: ``coursekit lms push ASSIGNMENT``.

The tool side of LTI 1.3 Assignment and Grade Services (AGS) is pylti1p3's: its ServiceConnector
signs the client-credentials JWT with the tool's private key and trades it for an access token at
the platform's token URL; its AssignmentsGradesService finds or creates the line item and posts
scores.  Nothing here builds a JWT or an OAuth request by hand.

What a push does, for one assignment:

1. reads every student's grade from the nbgrader gradebook (`coursekit.export.read_grades`: the
   cells' grades, manual ones included, less the late penalty);
2. finds the line item whose ``resourceId`` is the assignment's name in the course's line items
   (the URL the LMS gives when the tool is registered), or creates it with the gradebook's maximum
   score, the assignment's name as its label and the tag ``coursekit``;
3. reads the line item's results, and for each graded student whose result in the LMS differs
   (score or comment) or is missing, posts one score: ``scoreGiven``/``scoreMaximum``,
   ``activityProgress`` "Completed", ``gradingProgress`` "FullyGraded", ``submission.submittedAt``
   the time of the graded submission, and for a late one a comment saying how late it was.

A push is therefore idempotent: run twice, the second run posts nothing; a student regraded since
gets the new score.  The score's ``timestamp`` is the moment of the push, not of the submission:
AGS lets a platform refuse a score whose timestamp is not newer than the last one it kept, so a
regrade of the same submission carrying the submission's time would be refused; the submission's
time goes in ``submission.submittedAt``, the field AGS has for it.

The LMS's id of a student (the ``userId`` of a score) is the gradebook's ``lms_user_id`` (written
by the hub at each LTI launch, or by ``nbgrader db student import`` from an LMS roster), else the
nbgrader student id.

Errors lose nothing.  A score the LMS refuses (an unknown student, a closed assignment) names the
student and the reason; the others are still sent.  When the LMS cannot be reached or refuses the
access token, every graded student is named as not sent.  Either way the exit status is 1, and
since a rerun sends only what the LMS lacks, running the same command again sends the rest.

Credentials (README, "Grades in your LMS") come from a JSON file (``--credentials FILE`` or
``COURSEKIT_LTI_CREDENTIALS``) or from ``COURSEKIT_LTI_*`` environment variables; the tool's
private key is a PEM file named there.  A file inside the course folder is refused: submissions are
graded there and the course folder is what a hub's grader service shares.  So is a file that the
group or others may read (it must be mode 600 or 400).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .export import StudentGrade, read_grades
from .read import CourseError

__all__ = ["LMS_TAG", "LtiCredentials", "PushResult", "CredentialsError", "load_credentials", "public_jwk", "push_grades"]

LMS_TAG = "coursekit"  # the tag of the line items coursekit creates
SCOPES = ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
          "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
          "https://purl.imsglobal.org/spec/lti-ags/scope/score"]
RESULTS_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
# Environment variables, and the JSON file's keys they stand for.
ENV = {"issuer": "COURSEKIT_LTI_ISSUER", "client_id": "COURSEKIT_LTI_CLIENT_ID",
       "deployment_id": "COURSEKIT_LTI_DEPLOYMENT_ID", "token_url": "COURSEKIT_LTI_TOKEN_URL",
       "lineitems_url": "COURSEKIT_LTI_LINEITEMS_URL", "private_key_file": "COURSEKIT_LTI_PRIVATE_KEY_FILE",
       "audience": "COURSEKIT_LTI_TOKEN_AUDIENCE"}
CREDENTIALS_ENV = "COURSEKIT_LTI_CREDENTIALS"
# The deployment id is not needed to push (AGS calls name the line items); kept to say which deployment.
REQUIRED = ["issuer", "client_id", "token_url", "lineitems_url", "private_key_file"]
REASON_CHARS = 300


class CredentialsError(CourseError):
    """The LTI credentials are missing, incomplete or kept where others can read them."""


@dataclass(frozen=True)
class LtiCredentials:
    """What the LMS gave when the tool was registered, and the tool's private key."""

    issuer: str
    client_id: str
    deployment_id: str
    token_url: str  # the platform's OAuth 2 access token URL
    lineitems_url: str  # the course's AGS line items endpoint
    private_key: str = field(repr=False)  # PEM
    audience: str = ""  # the token request's audience, when the platform wants other than token_url
    source: str = ""  # where they were read from, for messages


def _check_private(path: Path, course_dir: Path, what: str) -> None:
    """Refuse a credentials file the sandboxed course folder holds or that others may read."""
    try:
        real = path.resolve(strict=True)
    except OSError as error:
        raise CredentialsError(f"{what} {path} cannot be read: {error.strerror}") from None
    course = course_dir.resolve()
    if real == course or course in real.parents:
        raise CredentialsError(f"{what} {path} is inside the course folder {course}, which graded submissions "
                               "and the hub's grader service can read; move it out, e.g. to "
                               "~/.config/coursekit/ (mode 600)")
    mode = real.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"{what} {path} may be read by others (mode {stat.S_IMODE(mode):o}); "
                               f"run `chmod 600 {path}`")


def load_credentials(*, course_dir: Path | str, file: Path | str | None = None,
                     environ: Mapping[str, str] | None = None) -> LtiCredentials:
    """The credentials from `file`, else the file named by COURSEKIT_LTI_CREDENTIALS, else the
    COURSEKIT_LTI_* variables; CredentialsError says what is missing or unsafe."""
    environ = os.environ if environ is None else environ
    course_dir = Path(course_dir)
    file = file or environ.get(CREDENTIALS_ENV)
    if file:
        path = Path(file).expanduser()
        _check_private(path, course_dir, "the LTI credentials file")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CredentialsError(f"the LTI credentials file {path} is not readable JSON: {error}") from None
        if not isinstance(values, dict):
            raise CredentialsError(f"the LTI credentials file {path} must hold one JSON object")
        source = str(path)
        missing = [key for key in REQUIRED if not values.get(key)]
        base = path.parent
    else:
        values = {key: environ.get(var, "") for key, var in ENV.items()}
        source = "the environment"
        missing = [ENV[key] for key in REQUIRED if not values.get(key)]
        base = Path.cwd()
    if missing:
        raise CredentialsError(f"LTI credentials from {source} lack {', '.join(missing)} (README, "
                               "\"Grades in your LMS\", lists what the LMS gives for each)")
    key_path = Path(str(values["private_key_file"])).expanduser()
    key_path = key_path if key_path.is_absolute() else base / key_path
    _check_private(key_path, course_dir, "the tool's private key")
    private_key = key_path.read_text(encoding="utf-8")
    try:
        public_pem(private_key)
    except (ValueError, TypeError) as error:
        raise CredentialsError(f"the tool's private key {key_path} is not an unencrypted PEM RSA key: {error}") from None
    return LtiCredentials(issuer=str(values["issuer"]), client_id=str(values["client_id"]),
                          deployment_id=str(values.get("deployment_id") or ""), token_url=str(values["token_url"]),
                          lineitems_url=str(values["lineitems_url"]),
                          private_key=private_key,
                          audience=str(values.get("audience") or ""), source=source)


def public_pem(private_key: str) -> str:
    """The public half of a PEM private key, as PEM (what the LMS is given, and what names the key)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_key.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_jwk(private_key: str) -> dict[str, Any]:
    """The tool's public key as the JWK an LMS is given (Canvas's "Public JWK" field), with its key id
    (the RFC 7638 thumbprint, which pylti1p3 puts in each assertion's header)."""
    from pylti1p3.registration import Registration

    return dict(Registration.get_jwk(public_pem(private_key)))


@dataclass
class PushResult:
    """What a push did, student by student."""

    assignment: str
    lineitem: str = ""  # the line item's URL in the LMS
    sent: dict[str, float] = field(default_factory=dict)  # student -> score posted
    unchanged: list[str] = field(default_factory=list)  # the LMS already had this score
    failed: dict[str, str] = field(default_factory=dict)  # student -> why it was not sent
    not_graded: dict[str, str] = field(default_factory=dict)  # student -> why there is nothing to send

    @property
    def ok(self) -> bool:
        return not self.failed


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lateness(seconds: float) -> str:
    """'3 h 5 min' for 11100 s: how late, for a person."""
    minutes = math.ceil(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p)


def comment_for(grade: StudentGrade) -> str:
    """The score's comment: the lateness of a late submission, else nothing."""
    if grade.seconds_late <= 0:
        return ""
    when = f" (submitted {_iso(grade.submitted)})" if grade.submitted else ""
    return f"Submitted {lateness(grade.seconds_late)} late{when}."


def _lms_errors() -> tuple[type[Exception], ...]:
    """What talking to the LMS can raise: pylti1p3's errors (an HTTP error answer is one), requests'
    (no connection, timeout) and a body that is not JSON."""
    from pylti1p3.exception import LtiException
    from requests import RequestException

    return (LtiException, RequestException, ValueError)


def _reason(error: Exception, token_url: str) -> str:
    """What went wrong talking to the LMS, in one line."""
    from pylti1p3.exception import LtiServiceException
    from requests import RequestException

    if isinstance(error, LtiServiceException):
        response = error.response
        body = " ".join(response.text.split())[:REASON_CHARS]
        if response.url == token_url or response.url.split("?")[0] == token_url.split("?")[0]:
            return (f"the LMS refused the access token (HTTP {response.status_code}: {body}); check the "
                    "client id and that the LMS has the tool's public key")
        if response.status_code in (400, 404, 422):
            return f"the LMS refused the score (HTTP {response.status_code}: {body}); is the student enrolled there?"
        return f"the LMS answered HTTP {response.status_code}: {body}"
    if isinstance(error, RequestException):
        return f"the LMS could not be reached ({type(error).__name__}: {error})"
    return f"{type(error).__name__}: {error}"


def _service(credentials: LtiCredentials) -> tuple[Any, Any]:
    """pylti1p3's AGS client for the course's line items, and its connection (which signs the token
    request with the tool's key and keeps the token)."""
    from pylti1p3.assignments_grades import AssignmentsGradesService
    from pylti1p3.registration import Registration
    from pylti1p3.service_connector import ServiceConnector

    registration = (Registration().set_issuer(credentials.issuer).set_client_id(credentials.client_id)
                    .set_auth_token_url(credentials.token_url).set_tool_private_key(credentials.private_key)
                    # the key's id (its JWK thumbprint) goes in the assertion's header: the LMS finds the key by it
                    .set_tool_public_key(public_pem(credentials.private_key)))
    if credentials.audience:
        registration.set_auth_audience(credentials.audience)
    connector = ServiceConnector(registration)
    service = AssignmentsGradesService(connector, {"scope": SCOPES, "lineitems": credentials.lineitems_url})  # type: ignore[typeddict-item]
    return service, connector


def results_url(lineitem_url: str) -> str:
    """AGS: the results of a line item are at its URL's path + "/results" (its query kept)."""
    path, question, query = lineitem_url.partition("?")
    return f"{path.rstrip('/')}/results{question}{query}"


def read_results(connector: Any, lineitem_url: str) -> dict[str, dict[str, Any]]:
    """userId -> result of the line item, following the LMS's next-page links (pylti1p3's get_grades
    reads the first page only, and a big class's results come in pages)."""
    url: str | None = results_url(lineitem_url)
    results: dict[str, dict[str, Any]] = {}
    while url:
        page = connector.make_service_request(SCOPES, url, accept=RESULTS_TYPE)
        for result in page["body"] or []:
            results[str(result.get("userId"))] = result
        url = page["next_page_url"]
    return results


def _same(result: dict[str, Any] | None, score: float, max_score: float, comment: str) -> bool:
    """Whether the LMS's result already says this (its maximum may be scaled to the line item's)."""
    if result is None or result.get("resultScore") is None:
        return False
    given, top = float(result["resultScore"]), float(result.get("resultMaximum") or max_score)
    same_score = math.isclose(given / top if top else given, score / max_score if max_score else score,
                              rel_tol=1e-9, abs_tol=1e-9)
    return same_score and (result.get("comment") or "") == comment


def push_grades(*, course_dir: Path | str, assignment: str, credentials: LtiCredentials | None = None,
                students: list[str] | None = None, label: str | None = None) -> PushResult:
    """Send `assignment`'s grades to the LMS's gradebook; see the module docstring.

    `credentials` default to `load_credentials(course_dir=course_dir)`; `students` limits the push
    (a grading service pushing one final grade); `label` names a new line item (default: the
    assignment's name).  Raises CourseError/CredentialsError when nothing can be tried; every
    failure with the LMS is in the result instead.
    """
    from pylti1p3.lineitem import LineItem

    credentials = credentials or load_credentials(course_dir=course_dir)
    grades = read_grades(course_dir, assignment)
    if students is not None:
        unknown = sorted(set(students) - {g.student for g in grades})
        if unknown:
            raise CourseError(f"not in the gradebook: {', '.join(unknown)}")
        grades = [g for g in grades if g.student in students]
    result = PushResult(assignment)
    to_send = []
    for g in grades:
        if g.pending_manual:
            result.not_graded[g.student] = "waits for manual grading (formgrader)"
        elif g.score is None:
            result.not_graded[g.student] = "no graded submission"
        else:
            to_send.append(g)
    if not to_send:
        return result
    max_score = to_send[0].max_score
    ags, connector = _service(credentials)
    wanted = (LineItem().set_resource_id(assignment).set_tag(LMS_TAG).set_label(label or assignment)
              .set_score_maximum(max_score))
    try:
        lineitem = ags.find_or_create_lineitem(wanted, find_by="resource_id")
        result.lineitem = lineitem.get_id() or ""
        existing = read_results(connector, result.lineitem)
    except _lms_errors() as error:  # the LMS down or refusing the token: nothing can be sent
        reason = _reason(error, credentials.token_url)
        result.failed = {g.student: reason for g in to_send}
        return result
    _send(ags, lineitem, to_send, existing, result, credentials.token_url)
    return result


def _send(ags: Any, lineitem: Any, grades: list[StudentGrade], existing: dict[str, dict[str, Any]],
          result: PushResult, token_url: str) -> None:
    from pylti1p3.grade import Grade

    for g in grades:
        assert g.score is not None
        user_id = g.lms_user_id or g.student
        comment = comment_for(g)
        if _same(existing.get(user_id), g.score, g.max_score, comment):
            result.unchanged.append(g.student)
            continue
        grade = (Grade().set_user_id(user_id).set_score_given(g.score).set_score_maximum(g.max_score)
                 .set_activity_progress("Completed").set_grading_progress("FullyGraded")
                 .set_timestamp(_iso(datetime.now(timezone.utc))))
        if comment:
            grade.set_comment(comment)
        if g.submitted:
            grade.set_extra_claims({"submission": {"submittedAt": _iso(g.submitted)}})
        try:
            ags.put_grade(grade, lineitem)
        except _lms_errors() as error:  # this student is named; the others are still sent
            result.failed[g.student] = _reason(error, token_url)
        else:
            result.sent[g.student] = g.score
