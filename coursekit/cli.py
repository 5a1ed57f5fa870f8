"""Command line: ``coursekit autograde ASSIGNMENT ...``, a drop-in for ``nbgrader autograde``.

    coursekit autograde ASSIGNMENT   grade every submission into the nbgrader gradebook
    coursekit feedback ASSIGNMENT    nbgrader's feedback pages, after checking hidden tests stay hidden
    coursekit report ASSIGNMENT      the class report and grades.csv, after either grader
    coursekit export ASSIGNMENT      grades as a Canvas or Moodle import file, or the per-cell table
    coursekit lms push ASSIGNMENT    grades into the LMS's gradebook over LTI Advantage (AGS)
    coursekit lms key                the tool's public key, for registering the tool in the LMS
    coursekit config                 coursekit's settings for a course (c.CourseKit.* in nbgrader_config.py)
    coursekit check ASSIGNMENT       grade variants of the master with nbgrader and coursekit; compare every cell
    coursekit serve                  grade each submission as it lands in the exchange, release its feedback
    coursekit status                 the grading service's queue, grades, failures and latency
    coursekit status --hub-service   the same as a page, served through JupyterHub to instructors
    coursekit --version

Every verb takes ``--course-dir`` (default: the current folder) and ``--log-level``: what the tool
tells the operator (a worker that died, a submission the grader could not grade, with INFO what
it is doing) goes through the ``coursekit`` logger to stderr; the progress bar is for a person
at a terminal and is drawn only there.  Exit status: 0 done, 1 some submission could not be
graded (or, for ``lms push``, some grade not sent), 2 the course or the command is not usable
(the message says why).

Each verb is one small function (`_autograde`, `_feedback`, ...) that the parser names
(``set_defaults(func=...)``): it turns the arguments into a call of the keyword-only Python API
function that does the work (`coursekit.autograde`, `feedback.generate_feedback`, ...) and prints
what it returns.  Settings given on the command line (``--wall-seconds``, ``--workers``) are
checked where the course's own are, by `config.CourseKit`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

from . import __version__
from .printable import printable

# Only the standard library is imported until the arguments are parsed: `coursekit --help` and
# `--version` take about 0.1 s, where importing the grader (nbgrader, nbformat, NumPy) takes 2 s
# (python -X importtime -m coursekit --version).


def _leave_out_unused_imports() -> None:
    """Called before nbformat is imported, and only in this command's own process: jsonschema
    then leaves out rfc3987_syntax, an optional package whose IRI grammars it builds at import
    (0.8 s of the command's 1.6 s of imports, python -X importtime).  nbformat validates
    notebooks without format checks, so nothing coursekit does uses them."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursekit", description="Fast, sandboxed nbgrader autograding.")
    parser.add_argument("--version", action="version", version=f"coursekit {__version__}")
    common = argparse.ArgumentParser(add_help=False)  # the options every verb takes
    common.add_argument("--course-dir", type=Path, default=Path("."),
                        help="folder holding nbgrader_config.py (default: the current folder)")
    common.add_argument("--log-level", choices=LOG_LEVELS, default="WARNING",
                        help="how much the tool tells on stderr (default: WARNING, problems only)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    _add_grading_verbs(verbs, common)
    _add_course_verbs(verbs, common)
    _add_lms_verbs(verbs, common)
    return parser


def _add_grading_verbs(verbs: Any, common: argparse.ArgumentParser) -> None:
    """autograde, feedback, report, export: an assignment's grades, from submissions to files."""
    grade = verbs.add_parser(
        "autograde", parents=[common], help="grade submitted/<student>/ASSIGNMENT into the nbgrader gradebook",
        description="Grade every submission of ASSIGNMENT (like `nbgrader autograde ASSIGNMENT`): "
                    "scores go to the course's gradebook, graded notebooks to autograded/.")
    grade.add_argument("assignment", metavar="ASSIGNMENT")
    grade.add_argument("--student", nargs="+", action="extend", metavar="ID",
                       help="grade only these students (repeatable)")
    grade.add_argument("--workers", type=int, metavar="N",
                       help="local worker processes (default: c.CourseKit.workers; 0: one per core, plus one)")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="Dask scheduler (tcp://HOST:PORT) to send the grading tasks to")
    grade.add_argument("--wall-seconds", type=float, metavar="S",
                       help="wall-clock seconds one sandbox run of a submission may take, in all: a safety "
                            "net over nbgrader's per-cell timeout, which applies to each cell (default: "
                            "c.CourseKit.wall_seconds, an hour)")
    grade.add_argument("--force", action="store_true", help="grade again submissions already graded")
    grade.add_argument("--json", action="store_true", help="print one JSON object per submission")
    grade.add_argument("--insecure", action="store_true",
                       help="grade even if this machine cannot isolate submissions (not root, no "
                            "namespaces, no seccomp): a submission could then read the hidden tests "
                            "and change the gradebook; every reason says so. Never for real classes.")
    feedback = verbs.add_parser(
        "feedback", parents=[common], help="write every graded student's feedback page (nbgrader generate_feedback)",
        description="Run nbgrader's generate_feedback for ASSIGNMENT with the course's preprocessors "
                    "(regenerating every page), after checking that one of them removes hidden tests.")
    feedback.add_argument("assignment", metavar="ASSIGNMENT")
    report = verbs.add_parser(
        "report", parents=[common], help="write the class report and grades.csv; print the grade table",
        description="Build the class report of ASSIGNMENT from the gradebook, coursekit's plan of the "
                    "assignment and the stored reasons (after coursekit or stock nbgrader grading).")
    report.add_argument("assignment", metavar="ASSIGNMENT")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for class_report.html and grades.csv (default: COURSE_DIR/reports)")
    export = verbs.add_parser(
        "export", parents=[common], help="write the grades as a Canvas or Moodle gradebook import file, or the per-cell table",
        description="Write ASSIGNMENT's grades from the gradebook as Canvas's gradebook import CSV, "
                    "Moodle's grade import CSV, or the per-cell table (csv).")
    export.add_argument("assignment", metavar="ASSIGNMENT")
    export.add_argument("--format", required=True, choices=["canvas", "moodle", "csv"])
    export.add_argument("--output", type=Path, metavar="FILE",
                        help="file to write (default: COURSE_DIR/reports/ASSIGNMENT-FORMAT.csv)")
    export.add_argument("--column", metavar="NAME",
                        help="the assignment's column name in the LMS file (default: ASSIGNMENT); in "
                             "Canvas, 'Name (12345)' updates the assignment with that Canvas id")
    for verb, func in ((grade, _autograde), (feedback, _feedback), (report, _report), (export, _export)):
        verb.set_defaults(func=func)  # main() calls it


def _add_course_verbs(verbs: Any, common: argparse.ArgumentParser) -> None:
    """config, check, serve, status: the course's settings, its check, the grading service."""
    config = verbs.add_parser(
        "config", parents=[common], help="show coursekit's settings for a course, with what each one means",
        description="Print every c.CourseKit.* setting with its help and the value the course's "
                    "nbgrader_config.py gives it.")
    check = verbs.add_parser(
        "check", parents=[common], help="check coursekit against stock nbgrader on this course's ASSIGNMENT",
        description="Show coursekit's plan of ASSIGNMENT (replay or sandbox for each test cell, and why), "
                    "build students from the master (the solution, the release, each solution cell stubbed, "
                    "the solutions in another style, each graded function returning a wrong value), grade "
                    "them with stock `nbgrader autograde` and with coursekit in temporary copies of the "
                    "course, and compare every grade cell. Exit 0 when all agree, 1 otherwise.")
    check.add_argument("assignment", metavar="ASSIGNMENT")
    check.add_argument("--jobs", type=int, default=2, metavar="N",
                       help="stock nbgrader runs side by side (default 2)")
    check.add_argument("--keep", type=Path, metavar="DIR",
                       help="build the temporary courses in DIR (must not exist) and keep them")
    serve = verbs.add_parser(
        "serve", parents=[common], help="grade every submission as it lands in the exchange and release its feedback",
        description="Watch the exchange's inbound folder; collect, grade and release feedback for each "
                    "submission, following the c.Serve.* policy in nbgrader_config.py (runs until SIGTERM).")
    serve.add_argument("--insecure", action="store_true",
                       help="grade even if this machine cannot isolate submissions; never for real classes")
    status = verbs.add_parser(
        "status", parents=[common], help="the grading service's queue, graded submissions, failures and latency",
        description="Read the grading service's journal and print where it stands.")
    status.add_argument("--hub-service", action="store_true",
                        help="serve the same as a web page, as a JupyterHub service (jupyterhub_config.py starts it)")
    for verb, func in ((config, _config), (check, _check), (serve, _serve), (status, _status)):
        verb.set_defaults(func=func)


def _add_lms_verbs(verbs: Any, common: argparse.ArgumentParser) -> None:
    """lms push, lms key: grades into the LMS over LTI Advantage."""
    lms = verbs.add_parser("lms", help="the LMS: push grades over LTI Advantage",
                           description="Talk to the LMS over LTI 1.3 Advantage (README, \"Grades in your LMS\").")
    lms_verbs = lms.add_subparsers(dest="lms_verb", required=True)
    push = lms_verbs.add_parser(
        "push", parents=[common], help="send each graded student's score to the LMS gradebook (AGS)",
        description="Find or create ASSIGNMENT's line item in the LMS and send every graded student's "
                    "score that the LMS does not already have. Rerun it after a failure: it sends the rest.")
    push.add_argument("assignment", metavar="ASSIGNMENT")
    push.add_argument("--student", nargs="+", action="extend", metavar="ID", help="push only these students")
    key = lms_verbs.add_parser(
        "key", parents=[common], help="print the tool's public key, for the LMS's registration of the tool",
        description="Print the public half of the tool's private key named in the credentials: as a JWK "
                    "(Canvas: Public JWK) and as PEM (Moodle: Public key, RSA key).")
    for verb in (push, key):
        verb.add_argument("--credentials", type=Path, metavar="FILE",
                          help="JSON file with the LTI registration (default: $COURSEKIT_LTI_CREDENTIALS, else "
                               "the COURSEKIT_LTI_* variables); mode 600, outside the course folder")
    push.set_defaults(func=_lms_push)
    key.set_defaults(func=_lms_key)


class _LogHandler(logging.StreamHandler):
    """stderr, one line per record; on a terminal the line first clears the progress bar, which
    the next update draws again below it."""

    def format(self, record: logging.LogRecord) -> str:
        # Messages carry student ids and reasons: control characters are shown, never acted on.
        text = printable(super().format(record), keep="\n")
        return "\r\033[K" + text if self.stream.isatty() else text


def _configure_logging(level: str) -> None:
    handler = _LogHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("coursekit: %(message)s"))
    logger = logging.getLogger("coursekit")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # a program that calls main() keeps its own root handlers' output


def _shown(path: Path) -> str:
    """A path as the user will type it: relative to the current folder when inside it."""
    try:
        return printable(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return printable(path)


# ----------------------------------------------------------------------------- one function per verb


def _autograde(args: argparse.Namespace) -> int:
    from .pipeline import autograde

    summary = autograde(assignment=args.assignment, course_dir=args.course_dir, students=args.student,
                        workers=args.workers, scheduler=args.scheduler, wall_seconds=args.wall_seconds,
                        force=args.force, json_lines=args.json, insecure=args.insecure)
    return 1 if summary.failed else 0


def _feedback(args: argparse.Namespace) -> int:
    from .feedback import generate_feedback

    feedback = generate_feedback(args.course_dir, args.assignment)
    pages = feedback.pages
    print(f"Feedback: {len(pages)} page(s), e.g. {_shown(pages[0])}" if pages else
          "Feedback: no page written (nothing graded yet?)")
    if feedback.failed:
        print(f"coursekit: nbgrader could not write feedback for {len(feedback.failed)} student(s): "
              f"{printable(', '.join(feedback.failed))}; the others have theirs. nbgrader's log:\n"
              f"{printable(feedback.log[-3000:], keep=chr(10))}", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from .class_report import write_report

    written = write_report(args.course_dir, args.assignment, args.out)
    print(written.table)
    print(f"\nGrades:       {_shown(written.csv)}")
    print(f"Class report: {_shown(written.html)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_grades

    path = export_grades(course_dir=args.course_dir, assignment=args.assignment, format=args.format,
                         output=args.output, column=args.column)
    print(f"{args.format} file: {_shown(path)}")
    return 0


def _config(args: argparse.Namespace) -> int:
    print(show_config(args.course_dir))
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check
    from .read import CourseError

    if args.jobs < 1:
        raise CourseError("--jobs must be at least 1")
    return 0 if check(assignment=args.assignment, course_dir=args.course_dir, jobs=args.jobs, keep=args.keep).ok else 1


def _serve(args: argparse.Namespace) -> int:
    from .service import serve

    serve(course_dir=args.course_dir, insecure=args.insecure)
    return 0


def _status(args: argparse.Namespace) -> int:
    """`coursekit status`: printed, or with --hub-service served as a page through JupyterHub."""
    from .service import serve_page, status

    if args.hub_service:
        serve_page(course_dir=args.course_dir)
    else:
        print(status(course_dir=args.course_dir).text())
    return 0


def _lms_key(args: argparse.Namespace) -> int:
    """`coursekit lms key`: the tool's public key, as a JWK and as PEM."""
    from .lms import load_credentials, public_jwk, public_pem

    credentials = load_credentials(course_dir=args.course_dir, file=args.credentials)
    print(json.dumps(public_jwk(credentials.private_key), indent=2))
    print(public_pem(credentials.private_key), end="")
    return 0


def _lms_push(args: argparse.Namespace) -> int:
    """`coursekit lms push`: one line per student sent or not sent, then the counts."""
    from .lms import load_credentials, push_grades

    credentials = load_credentials(course_dir=args.course_dir, file=args.credentials)
    done = push_grades(course_dir=args.course_dir, assignment=args.assignment, credentials=credentials,
                       students=args.student)
    for student, score in done.sent.items():
        print(f"sent       {student!r}: {score:g}")
    for student, why in done.not_graded.items():
        print(f"not graded {student!r}: {printable(why)}")
    for student, why in done.failed.items():
        print(f"NOT SENT   {student!r}: {printable(why)}", file=sys.stderr)
    print(f"{args.assignment}: {len(done.sent)} sent, {len(done.unchanged)} already in the LMS, "
          f"{len(done.failed)} not sent, {len(done.not_graded)} not graded"
          + (f" (line item {done.lineitem})" if done.lineitem else ""))
    if done.failed:
        print("Fix what the lines above say, then run the same command again: it sends only what the LMS "
              "lacks.", file=sys.stderr)
    return 0 if done.ok else 1


def show_config(course_dir: Path) -> str:
    """Each c.CourseKit setting: its value for the course at `course_dir`, then its help."""
    from .config import CourseKit
    from .read import course_config, load_course

    settings = load_course(course_dir).settings  # checks the values, as grading would
    kit = CourseKit(config=course_config(course_dir))
    lines = [f"# coursekit {__version__}: settings of the course in {course_dir.resolve()}",
             "# (set them in nbgrader_config.py as c.CourseKit.<name> = <value>)", ""]
    for name, trait in sorted(kit.class_traits(config=True).items()):
        lines.append(f"c.CourseKit.{name} = {getattr(kit, name)!r}")
        lines += [f"    {line}" for line in textwrap.wrap(" ".join((trait.help or "").split()), 92)]
    from .service.policy import Serve

    serve = Serve(config=course_config(course_dir))
    lines += ["", "# coursekit serve, the grading service (c.Serve.<name>)", ""]
    for name, trait in sorted(serve.class_traits(config=True).items()):
        lines.append(f"c.Serve.{name} = {getattr(serve, name)!r}")
        lines += [f"    {line}" for line in textwrap.wrap(" ".join((trait.help or "").split()), 92)]
    lines.append(f"\n# sandbox limits in effect: {settings.limits}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # --help and --version end here
    _configure_logging(args.log_level)
    _leave_out_unused_imports()
    from .read import CourseError

    try:
        return int(args.func(args))
    except CourseError as error:
        print(f"coursekit: {printable(error, keep=chr(10))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
