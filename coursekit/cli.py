"""Command line: ``coursekit autograde ASSIGNMENT ...``, a drop-in for ``nbgrader autograde``.

    coursekit autograde ASSIGNMENT   grade every submission into the nbgrader gradebook
    coursekit feedback ASSIGNMENT    nbgrader's feedback pages, after checking hidden tests stay hidden
    coursekit report ASSIGNMENT      the class report and grades.csv, after either grader
    coursekit export ASSIGNMENT      grades as a Canvas or Moodle import file, or the per-cell table
    coursekit lms push ASSIGNMENT    grades into the LMS's gradebook over LTI Advantage (AGS)
    coursekit lms key                the tool's public key, for registering the tool in the LMS
    coursekit config                 coursekit's settings for a course (c.CourseKit.* in nbgrader_config.py)
    coursekit --version

Every verb takes ``--course-dir`` (default: the current folder).  Exit status: 0 done, 1 some
submission could not be graded (or, for ``lms push``, some grade not sent), 2 the course or the
command is not usable (the message says why).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

# Set before nbformat is imported, and only in this command's own process: jsonschema then leaves
# out rfc3987_syntax, an optional package whose IRI grammars it builds at import (0.8 s of the
# command's 1.6 s of imports, python -X importtime).  nbformat validates notebooks without format
# checks, so nothing coursekit does uses them.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from . import __version__  # noqa: E402
from .read import CourseError, course_config, load_course  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursekit", description="Fast, sandboxed nbgrader autograding.")
    parser.add_argument("--version", action="version", version=f"coursekit {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    grade = verbs.add_parser(
        "autograde", help="grade submitted/<student>/ASSIGNMENT into the nbgrader gradebook",
        description="Grade every submission of ASSIGNMENT (like `nbgrader autograde ASSIGNMENT`): "
                    "scores go to the course's gradebook, graded notebooks to autograded/.")
    grade.add_argument("assignment", metavar="ASSIGNMENT")
    grade.add_argument("--course-dir", type=Path, default=Path("."),
                       help="folder holding nbgrader_config.py (default: the current folder)")
    grade.add_argument("--student", nargs="+", action="extend", metavar="ID",
                       help="grade only these students (repeatable)")
    grade.add_argument("--workers", type=int, help="local worker processes (default: one per core, plus one)")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="Dask scheduler (tcp://HOST:PORT) to send the grading tasks to")
    grade.add_argument("--timeout", type=float, metavar="S",
                       help="wall-clock seconds per submission in the sandbox (default: 20)")
    grade.add_argument("--force", action="store_true", help="grade again submissions already graded")
    grade.add_argument("--json", action="store_true", help="print one JSON object per submission")
    grade.add_argument("--insecure", action="store_true",
                       help="grade even if this machine cannot isolate submissions (not root, no "
                            "namespaces, no seccomp): a submission could then read the hidden tests "
                            "and change the gradebook; every reason says so. Never for real classes.")
    feedback = verbs.add_parser(
        "feedback", help="write every graded student's feedback page (nbgrader generate_feedback)",
        description="Run nbgrader's generate_feedback for ASSIGNMENT with the course's preprocessors "
                    "(regenerating every page), after checking that one of them removes hidden tests.")
    feedback.add_argument("assignment", metavar="ASSIGNMENT")
    report = verbs.add_parser(
        "report", help="write the class report and grades.csv; print the grade table",
        description="Build the class report of ASSIGNMENT from the gradebook, coursekit's plan of the "
                    "assignment and the stored reasons (after coursekit or stock nbgrader grading).")
    report.add_argument("assignment", metavar="ASSIGNMENT")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for class_report.html and grades.csv (default: COURSE_DIR/reports)")
    export = verbs.add_parser(
        "export", help="write the grades as a Canvas or Moodle gradebook import file, or the per-cell table",
        description="Write ASSIGNMENT's grades from the gradebook as Canvas's gradebook import CSV, "
                    "Moodle's grade import CSV, or the per-cell table (csv).")
    export.add_argument("assignment", metavar="ASSIGNMENT")
    export.add_argument("--format", required=True, choices=["canvas", "moodle", "csv"])
    export.add_argument("--output", type=Path, metavar="FILE",
                        help="file to write (default: COURSE_DIR/reports/ASSIGNMENT-FORMAT.csv)")
    export.add_argument("--column", metavar="NAME",
                        help="the assignment's column name in the LMS file (default: ASSIGNMENT); in "
                             "Canvas, 'Name (12345)' updates the assignment with that Canvas id")
    lms = verbs.add_parser("lms", help="the LMS: push grades over LTI Advantage",
                           description="Talk to the LMS over LTI 1.3 Advantage (README, \"Grades in your LMS\").")
    lms_verbs = lms.add_subparsers(dest="lms_verb", required=True)
    push = lms_verbs.add_parser(
        "push", help="send each graded student's score to the LMS gradebook (AGS)",
        description="Find or create ASSIGNMENT's line item in the LMS and send every graded student's "
                    "score that the LMS does not already have. Rerun it after a failure: it sends the rest.")
    push.add_argument("assignment", metavar="ASSIGNMENT")
    push.add_argument("--student", nargs="+", action="extend", metavar="ID", help="push only these students")
    key = lms_verbs.add_parser(
        "key", help="print the tool's public key, for the LMS's registration of the tool",
        description="Print the public half of the tool's private key named in the credentials: as a JWK "
                    "(Canvas: Public JWK) and as PEM (Moodle: Public key, RSA key).")
    for verb in (push, key):
        verb.add_argument("--credentials", type=Path, metavar="FILE",
                          help="JSON file with the LTI registration (default: $COURSEKIT_LTI_CREDENTIALS, else "
                               "the COURSEKIT_LTI_* variables); mode 600, outside the course folder")
    config = verbs.add_parser(
        "config", help="show coursekit's settings for a course, with what each one means",
        description="Print every c.CourseKit.* setting with its help and the value the course's "
                    "nbgrader_config.py gives it.")
    for verb in (feedback, report, export, push, key, config):
        verb.add_argument("--course-dir", type=Path, default=Path("."),
                          help="folder holding nbgrader_config.py (default: the current folder)")
    return parser


def _shown(path: Path) -> str:
    """A path as the user will type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _push(args: argparse.Namespace) -> int:
    """`coursekit lms push`: one line per student sent or not sent, then the counts
    (`coursekit lms key`: the tool's public key)."""
    from .lms import load_credentials, public_jwk, public_pem, push_grades

    credentials = load_credentials(course_dir=args.course_dir, file=args.credentials)
    if args.lms_verb == "key":
        print(json.dumps(public_jwk(credentials.private_key), indent=2))
        print(public_pem(credentials.private_key), end="")
        return 0
    done = push_grades(course_dir=args.course_dir, assignment=args.assignment, credentials=credentials,
                       students=args.student)
    for student, score in done.sent.items():
        print(f"sent       {student!r}: {score:g}")
    for student, why in done.not_graded.items():
        print(f"not graded {student!r}: {why}")
    for student, why in done.failed.items():
        print(f"NOT SENT   {student!r}: {why}", file=sys.stderr)
    print(f"{args.assignment}: {len(done.sent)} sent, {len(done.unchanged)} already in the LMS, "
          f"{len(done.failed)} not sent, {len(done.not_graded)} not graded"
          + (f" (line item {done.lineitem})" if done.lineitem else ""))
    if done.failed:
        print("Fix what the lines above say, then run the same command again: it sends only what the LMS "
              "lacks.", file=sys.stderr)
    return 0 if done.ok else 1


def _other_verb(args: argparse.Namespace) -> int:
    """feedback, report, export, lms and config; autograde is `main`'s own."""
    if args.verb == "lms":
        return _push(args)
    if args.verb == "export":
        from .export import export_grades

        path = export_grades(course_dir=args.course_dir, assignment=args.assignment, format=args.format,
                                output=args.output, column=args.column)
        print(f"{args.format} file: {_shown(path)}")
    elif args.verb == "config":
        print(show_config(args.course_dir))
    elif args.verb == "feedback":
        from .feedback import generate_feedback

        pages = generate_feedback(args.course_dir, args.assignment).pages
        print(f"Feedback: {len(pages)} page(s), e.g. {_shown(pages[0])}" if pages else
              "Feedback: no page written (nothing graded yet?)")
    else:
        from .class_report import write_report

        written = write_report(args.course_dir, args.assignment, args.out)
        print(written.table)
        print(f"\nGrades:       {_shown(written.csv)}")
        print(f"Class report: {_shown(written.html)}")
    return 0


def show_config(course_dir: Path) -> str:
    """Each c.CourseKit setting: its value for the course at `course_dir`, then its help."""
    from .config import CourseKit

    settings = load_course(course_dir).settings  # checks the values, as grading would
    kit = CourseKit(config=course_config(course_dir))
    lines = [f"# coursekit {__version__}: settings of the course in {course_dir.resolve()}",
             "# (set them in nbgrader_config.py as c.CourseKit.<name> = <value>)", ""]
    for name, trait in sorted(kit.class_traits(config=True).items()):
        lines.append(f"c.CourseKit.{name} = {getattr(kit, name)!r}")
        lines += [f"    {line}" for line in textwrap.wrap(" ".join((trait.help or "").split()), 92)]
    lines.append(f"\n# sandbox limits in effect: {settings.limits}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verb != "autograde":
        try:
            return _other_verb(args)
        except CourseError as error:
            print(f"coursekit: {error}", file=sys.stderr)
            return 2
    from .pipeline import autograde  # after parsing, so --help stays fast

    if args.workers is not None and args.workers < 1:
        print("coursekit: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.timeout is not None and not args.timeout > 0:
        print("coursekit: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        summary = autograde(assignment=args.assignment, course_dir=args.course_dir, students=args.student,
                            workers=args.workers, scheduler=args.scheduler, timeout=args.timeout,
                            force=args.force, json_lines=args.json, insecure=args.insecure)
    except CourseError as error:
        print(f"coursekit: {error}", file=sys.stderr)
        return 2
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
