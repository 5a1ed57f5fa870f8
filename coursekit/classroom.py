"""Generated classes, for testing a grader on any nbgrader course: course folders built by the real
nbgrader, students written from the release notebook the way students write (a stub filled, a
cell rewritten), each with the points worked out by hand, and the grades nbgrader's gradebook holds.

This is the one place that the course's scripts and benchmarks (scripts/, bench/) and the tool's
tests (tests/, on their own fixture courses) share, so that none of them imports another.  It is
not a stage of the grader: it imports nothing from coursekit, and it reads grades through nbgrader's
own API (`nbgrader.api.Gradebook`), so a test that compares coursekit's grades with what it reads
here does not check coursekit against itself.

A class is described by its exercises: for each solution cell (by grade id), the `Variant`s a
student may write there, and the test cells that judge it.  A variant's ``expect`` says, per test
cell, whether it passes; whoever writes a variant works that out from the tests, by hand.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook

__all__ = ["STUB", "STUB_COMMENT", "TIMESTAMP", "LEFTOVERS", "Variant", "Exercise", "grade_id", "index_of",
           "fill_stub", "edit_cells", "solved_cell", "solve", "solve_notebook", "body", "then", "sub", "unchanged",
           "new_course", "generate_assignment", "copy_course", "gradebook_grades", "choices", "make_notebook",
           "cell_points", "expected_for", "write_class", "expected_scores"]

STUB_COMMENT = "# YOUR CODE HERE"
STUB = "raise NotImplementedError()"
TIMESTAMP = "2026-11-20 12:00:00.000000 UTC"  # when a generated student submitted
LEFTOVERS = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")

Edit = Callable[[str], str]  # a cell's source as released -> what the student leaves there


# --- a student's edits ----------------------------------------------------------------------------

def grade_id(cell: Mapping) -> str | None:
    """The cell's nbgrader grade id, or None (also when its nbgrader metadata is not a mapping)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, Mapping) else None


def index_of(nb: Mapping, gid: str) -> int:
    """The position of the cell with grade id ``gid`` in the notebook."""
    return next(i for i, c in enumerate(nb["cells"]) if grade_id(c) == gid)


def fill_stub(source: str, code: str, keep_comment: bool = True) -> str:
    """``source`` with its ``raise NotImplementedError()`` line replaced by ``code``, indented like it.

    With ``keep_comment=False`` the ``# YOUR CODE HERE`` line above the stub goes too.
    """
    lines = source.split("\n")
    found = [i for i, line in enumerate(lines) if line.strip() == STUB]
    if len(found) != 1:
        raise ValueError(f"expected one '{STUB}' stub line, found {len(found)} in cell:\n{source}")
    (index,) = found
    start = index
    if not keep_comment:
        if index == 0 or lines[index - 1].strip() != STUB_COMMENT:
            raise ValueError(f"no '{STUB_COMMENT}' line above the stub in cell:\n{source}")
        start = index - 1
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines[start:index + 1] = [indent + line if line else line for line in code.split("\n")]
    return "\n".join(lines)


def edit_cells(nb: Mapping, edits: Mapping[str, Edit]) -> set[str]:
    """Apply ``edits[grade_id](source)`` to each cell with that nbgrader grade id; the ids edited."""
    edited: set[str] = set()
    for cell in nb["cells"]:
        gid = grade_id(cell)
        if gid is not None and gid in edits:
            source = cell["source"]
            cell["source"] = edits[gid](source if isinstance(source, str) else "".join(source))
            edited.add(gid)
    return edited


def solved_cell(stub_source: str, code: str, signature: str = "") -> str:
    """The cell source with the stub line replaced by ``code``, indented like the stub.

    ``signature`` is an optional comment added on the first line of the code, so a test can tell
    whose work a graded notebook shows.
    """
    return fill_stub(stub_source, (f"# {signature}\n" if signature else "") + code)


def solve(nb: dict, bodies: Mapping[str, str], signature: str = "") -> dict:
    """Fill the solution cells named in ``bodies`` of the notebook (JSON), as a student would; it, edited."""
    def filler(code: str) -> Edit:
        return lambda source: solved_cell(source, code, signature)

    filled = edit_cells(nb, {gid: filler(code) for gid, code in bodies.items()})
    missing = set(bodies) - filled
    if missing:
        raise ValueError(f"the notebook has no solution cells {sorted(missing)}")
    return nb


def solve_notebook(path: Path, bodies: Mapping[str, str], signature: str = "") -> None:
    """Edit the notebook file in place as a student would: fill the solution cells named in ``bodies``."""
    nb = solve(json.loads(path.read_text(encoding="utf-8")), bodies, signature)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def body(code: str) -> Edit:
    """An edit: the stub line replaced by ``code`` (indented like the stub)."""
    return lambda source: solved_cell(source, code)


def then(*edits: Edit) -> Edit:
    """An edit: ``edits`` one after the other."""
    def apply(source: str) -> str:
        for edit in edits:
            source = edit(source)
        return source
    return apply


def sub(old: str, new: str) -> Edit:
    """An edit: ``old`` (which must be there) replaced by ``new``."""
    def apply(source: str) -> str:
        if old not in source:
            raise ValueError(f"{old!r} is not in the cell:\n{source}")
        return source.replace(old, new)
    return apply


def unchanged(source: str) -> str:
    """The edit of a student who leaves the cell as released."""
    return source


# --- course folders -------------------------------------------------------------------------------

def new_course(dest: Path, files: tuple[str, ...], origin: Path) -> Path:
    """A course folder at ``dest`` holding copies of ``files`` (files or folders, paths relative to
    ``origin``) from ``origin``."""
    dest.mkdir(parents=True)
    for name in files:
        src = origin / name
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=LEFTOVERS)
        else:
            shutil.copy(src, dest / name)
    return dest


def generate_assignment(course: Path, assignment: str, *options: str, env: dict[str, str]) -> None:
    """Run the real `nbgrader generate_assignment ASSIGNMENT` in ``course`` (``env`` with the
    Python's bin/ on PATH: nbgrader shells out to `alembic`); raise with its output if it fails."""
    args = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, *options]
    done = subprocess.run(args, cwd=course, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"generate_assignment failed in {course}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def copy_course(template: Path, dest: Path) -> Path:
    """A private copy of a generated course (its gradebook included), for one test or run to change."""
    shutil.copytree(template, dest)
    return dest


def gradebook_grades(course: Path, assignment: str, course_id: str,
                     url: str | None = None) -> dict[tuple[str, str], tuple[float | None, bool]]:
    """{(student, grade cell): (auto_score, needs_manual_grade)} for every submission in the
    course's SQLite gradebook (or the one at ``url``), read through nbgrader's API; grade ids are
    unique across an assignment's notebooks."""
    with Gradebook(url or f"sqlite:///{course / 'gradebook.db'}", course_id) as gb:
        return {(sub.student.id, grade.name): (grade.auto_score, grade.needs_manual_grade)
                for sub in gb.find_assignment(assignment).submissions
                for nb in sub.notebooks for grade in nb.grades}


# --- a class --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """What a student writes in one solution cell, and whether each of its test cells passes."""

    name: str
    expect: tuple[bool, ...]  # per test cell of the exercise, in order: passes?
    edit: Edit  # the cell's source as released -> what the student submits


@dataclass(frozen=True)
class Exercise:
    """One solution cell's variants and the test cells that judge it (in `Variant.expect`'s order)."""

    variants: tuple[Variant, ...]
    tests: tuple[str, ...]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


def choices(exercises: Mapping[str, Exercise], count: int, rng: random.Random) -> list[dict[str, str]]:
    """Each student's variant per exercise ({solution cell: variant name}).  First a cover: student
    i takes variant i (cycling) of every exercise, so the first max(#variants) students hold every
    variant of every exercise; then random mixtures."""
    width = max(len(ex.variants) for ex in exercises.values())
    picks = [{gid: ex.variants[i % len(ex.variants)].name for gid, ex in exercises.items()} for i in range(width)]
    while len(picks) < count:
        picks.append({gid: rng.choice(ex.variants).name for gid, ex in exercises.items()})
    return picks[:count]


def make_notebook(release: dict, exercises: Mapping[str, Exercise], pick: Mapping[str, str],
                  scratch: str | None = None) -> dict:
    """The release notebook (JSON) as a student who wrote ``pick``'s variants leaves it; with
    ``scratch``, a code cell of theirs holding it at the end."""
    nb = json.loads(json.dumps(release))
    edit_cells(nb, {gid: ex.variant(pick[gid]).edit for gid, ex in exercises.items()})
    if scratch is not None:
        nb["cells"].append({"id": "scratch", "cell_type": "code", "execution_count": None, "metadata": {},
                            "outputs": [], "source": scratch})
    return nb


def cell_points(release: dict) -> dict[str, float]:
    """{grade cell: its points} of a release notebook (JSON)."""
    return {c["metadata"]["nbgrader"]["grade_id"]: float(c["metadata"]["nbgrader"]["points"])
            for c in release["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")}


def expected_for(exercises: Mapping[str, Exercise], pick: Mapping[str, str],
                 points: Mapping[str, float]) -> dict[str, float]:
    """{test cell: points} a student who wrote ``pick``'s variants earns, from the variants' ``expect``."""
    scores = {}
    for gid, ex in exercises.items():
        for test, passes in zip(ex.tests, ex.variant(pick[gid]).expect, strict=True):
            scores[test] = points[test] if passes else 0.0
    return scores


def write_class(course_dir: Path, assignment: str, release: dict, exercises: Mapping[str, Exercise],
                count: int, seed: int = 0, scratch: str | None = None) -> dict[str, dict]:
    """Write submitted/<student>/ASSIGNMENT/ASSIGNMENT.ipynb (+ timestamp.txt) for ``count``
    students s000, s001, ... (`choices`; every third carries the ``scratch`` cell) and
    class_manifest.json; return the manifest {student: {"variants": pick, "expected": {test cell: points}}}."""
    points = cell_points(release)
    manifest = {}
    for index, pick in enumerate(choices(exercises, count, random.Random(seed))):
        student = f"s{index:03d}"
        folder = course_dir / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nb = make_notebook(release, exercises, pick, scratch if index % 3 == 2 else None)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")
        (folder / "timestamp.txt").write_text(TIMESTAMP + "\n")
        manifest[student] = {"variants": pick, "expected": expected_for(exercises, pick, points)}
    (course_dir / "class_manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def expected_scores(manifest: Mapping[str, dict]) -> dict[tuple[str, str], float]:
    """{(student, test cell): points} that a generated class's manifest worked out by hand."""
    return {(student, cell): score for student, entry in manifest.items()
            for cell, score in entry["expected"].items()}
