"""Differential testing: grade a seeded class of unusual notebooks with both `nbgrader autograde`
and `coursekit autograde`, and compare every test cell's score.

    python -m scripts.fuzz [--count 300] [--seed 0] [--without FEATURE[:STYLE] ...] [--keep DIR] [--json FILE]

`make fuzz` runs the full set and prints the agreement table.  The generator extends
`scripts/make_class.py`: each exercise gets one of its variants (correct in several styles or a
typical mistake, weighted towards correct so that what surrounds a right answer decides the
grade), then the notebook gets a few *features*, the unusual things students and their tools do:
cell and line magics, CRLF and CR line endings, identifiers Python normalises (NFKC), functions
defined through `exec` or installed by a helper through `global`, settings stored by subscript
or attribute in another cell, helper cells above or below the tests, scratch cells that print,
raise or write to stderr, definitions after the tests, deleted, duplicated and metadata-stripped
cells.  The first notebooks hold one feature each on an otherwise correct notebook (a minimal
example of every class); the rest mix up to four features with random variants.

Nothing here predicts a score: stock nbgrader, which runs the notebook top to bottom, is the
reference.  Both graders run as a teacher runs them, each once over the whole class, on their own
copy of one throw-away course.  A per-cell difference is a *recovery* only when the notebook
carries a feature that coursekit documents as a recovery (duplicated grade ids, deleted test
cells, stripped metadata, a solution turned into markdown or raw), the cell is one that feature
touches, and coursekit's reason names the recovery (by its nbgrader issue number); every other
difference is a disagreement.  The run lists both.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import functools
import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

from coursekit import classroom
from scripts import make_class
from scripts.course import ASSIGNMENT, RELEASE, ROOT
from scripts.courses import build_template, copy_course, gradebook_scores, nbgrader_env
from scripts.student_work import grade_id, index_of

EXERCISES = make_class.EXERCISES  # function (= its solution cell's grade id) -> its variants and test cells
SHORT = {f: f.rsplit("_", 1)[-1] for f in EXERCISES}  # initialize_parameters_he -> he
P_CORRECT = 0.6  # chance that an exercise gets a correct variant (picked among the correct styles)


# ----------------------------------------------------------------------------- notebook helpers

def text(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def new_cell(rng: random.Random, source: str, cell_type: str = "code") -> dict:
    cell: dict = {"id": f"fz{rng.randrange(16 ** 8):08x}", "cell_type": cell_type, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def present_tests(nb: dict, function: str) -> list[str]:
    ids = {grade_id(c) for c in nb["cells"]}
    return [t for t in EXERCISES[function].tests if t in ids]


def last_test(nb: dict, function: str) -> int:
    """Index of the exercise's last test cell (of its solution cell if its tests were deleted)."""
    found = [index_of(nb, t) for t in present_tests(nb, function)]
    return max(found) if found else index_of(nb, function)


def place(nb: dict, cell: dict, function: str, where: str) -> None:
    """Insert ``cell`` relative to the exercise of ``function``: just above its solution cell,
    between the solution and its first test, just below its last test, or at the very end."""
    at = {"above": lambda: index_of(nb, function),
          "between": lambda: index_of(nb, function) + 1,
          "below": lambda: last_test(nb, function) + 1,
          "end": lambda: len(nb["cells"])}[where]()
    nb["cells"].insert(at, cell)


def release_cell(gid: str) -> dict:
    return next(c for c in _release()["cells"] if grade_id(c) == gid)


@functools.cache
def _release() -> dict:
    return json.loads(RELEASE.read_text(encoding="utf-8"))


def solution(nb: dict, function: str) -> dict:
    return nb["cells"][index_of(nb, function)]


def edit_solution(nb: dict, function: str, edit: Callable[[str], str]) -> None:
    cell = solution(nb, function)
    cell["source"] = edit(text(cell))


# ----------------------------------------------------------------------------- features

@dataclass(frozen=True)
class Feature:
    """One unusual thing done to a notebook, to the exercise of one function, in one of ``styles``.

    ``apply(nb, function, style, rng)`` edits the notebook and returns False when the feature does
    not fit it (e.g. the variant has no ``return parameters`` line to reroute).  ``recovery`` is
    the nbgrader issue coursekit names in its reason when it recovers from this on purpose.
    """

    name: str
    styles: tuple[str, ...]
    apply: Callable[[dict, str, str, random.Random], bool]
    recovery: str | None = None
    order: int = 50  # features apply in this order (source edits before cells move around)
    whole_notebook: bool = False


FEATURES: dict[str, Feature] = {}


def feature(name: str, styles: tuple[str, ...], recovery: str | None = None, order: int = 50,
            whole_notebook: bool = False) -> Callable:
    def register(apply: Callable[[dict, str, str, random.Random], bool]) -> Callable:
        FEATURES[name] = Feature(name, styles, apply, recovery, order, whole_notebook)
        return apply
    return register


RETURN = "    return parameters"
PLACES = ("above", "between", "below", "end")


def _reroute_return(nb: dict, function: str, new_return: str) -> bool:
    if RETURN not in text(solution(nb, function)):
        return False
    edit_solution(nb, function, lambda s: s.replace(RETURN, f"    return {new_return}"))
    return True


# -- settings and helpers the solution reads from other cells (placed above, between or below)

@feature("helper-function-cell", PLACES, order=10)
def _helper_function(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    helper = f"_finish_{SHORT[function]}"
    if not _reroute_return(nb, function, f"{helper}(parameters)"):
        return False
    place(nb, new_cell(rng, f"def {helper}(parameters):\n    \"\"\"A helper of my own.\"\"\"\n"
                            "    return dict(parameters)\n"), function, style)
    return True


def _setting_in_another_cell(nb: dict, function: str, where: str, rng: random.Random, returned: str,
                             create: str, store: str) -> bool:
    """The solution returns ``returned``, which reads a setting: the cell ``create`` goes just above
    the solution, the cell ``store`` that sets it goes ``where``."""
    if not _reroute_return(nb, function, returned):
        return False
    place(nb, new_cell(rng, create), function, "above")
    place(nb, new_cell(rng, store), function, where)
    return True


@feature("subscript-setting", PLACES[:3], order=10)
def _subscript_setting(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    config = f"CONFIG_{SHORT[function]}"
    return _setting_in_another_cell(
        nb, function, style, rng, f"{{k: np.asarray(v, dtype={config}['dtype']) for k, v in parameters.items()}}",
        f"{config} = {{}}\n", f"{config}['dtype'] = np.float64\n")


@feature("attribute-setting", PLACES[:3], order=10)
def _attribute_setting(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    settings = f"settings_{SHORT[function]}"
    return _setting_in_another_cell(
        nb, function, style, rng, f"{{k: v * {settings}.scale for k, v in parameters.items()}}",
        f"import types\n{settings} = types.SimpleNamespace()\n", f"{settings}.scale = 1.0\n")


# -- how the function gets defined

@feature("stderr-in-function", ("print-stderr", "warnings-warn", "print-stdout"), order=15)
def _stderr_in_function(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    line = {"print-stderr": 'print("debug: building parameters", file=sys.stderr)',
            "warnings-warn": 'warnings.warn("check the shapes")',
            "print-stdout": 'print("debug: building parameters")'}[style]
    header = f"def {function}(layers_dims):\n"
    if header not in text(solution(nb, function)):
        return False
    edit_solution(nb, function, lambda s: "import sys\nimport warnings\n" + s.replace(header, header + f"    {line}\n", 1))
    return True


@feature("global-installer", ("nested-def", "alias"), order=20)
def _global_installer(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    def nested(s: str) -> str:
        body = "\n".join("    " + line if line else line for line in s.split("\n"))
        return f"def _install():\n    global {function}\n{body}\n\n\n_install()\n"

    def alias(s: str) -> str:
        impl = f"_{SHORT[function]}_impl"
        return (s.replace(f"def {function}(", f"def {impl}(") +
                f"\n\n\ndef _install():\n    global {function}\n    {function} = {impl}\n\n\n_install()\n")
    edit_solution(nb, function, nested if style == "nested-def" else alias)
    return True


# NFKC turns these into ASCII letters: fullwidth (U+FF41...), mathematical bold (U+1D41A...).
LETTER = {"fullwidth-function-name": 0xFF41, "bold-function-name": 0x1D41A}


@feature("nfkc-identifier", ("fullwidth-function-name", "bold-function-name", "script-l-local"), order=30)
def _nfkc(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    def edit(s: str) -> str:
        if style == "script-l-local":  # the loop variable l spelled ℓ in some places
            return s.replace("for l in", "for \u2113 in", 1).replace("[l]", "[\u2113]", 1)
        at = s.find(function)
        return s[:at] + chr(LETTER[style] + ord(function[0]) - ord("a")) + s[at + 1:] if at >= 0 else s
    edit_solution(nb, function, edit)
    return True


@feature("exec-definition", ("exec", "exec-globals", "exec-compile"), order=40)
def _exec(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    wrap = {"exec": lambda s: f"exec({s!r})\n",
            "exec-globals": lambda s: f"exec({s!r}, globals())\n",
            "exec-compile": lambda s: f"_code = {s!r}\nexec(compile(_code, '<my solution>', 'exec'))\n"}[style]
    edit_solution(nb, function, wrap)
    return True


# -- magics and line endings (after every other edit of the source)

CELL_MAGICS = {"time": "%%time", "capture": "%%capture", "capture-to-variable": "%%capture captured"}
LINE_MAGICS = {"matplotlib": "%matplotlib inline", "timeit": "%timeit -n 1 -r 1 sum(range(10))",
               "autoreload": "%load_ext autoreload\n%autoreload 2", "config": "%config InlineBackend.figure_format = 'png'",
               "shell-escape": "!echo solving"}


@feature("cell-magic", tuple(CELL_MAGICS), order=60)
def _cell_magic(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    edit_solution(nb, function, lambda s: f"{CELL_MAGICS[style]}\n{s}")
    return True


@feature("line-magic", tuple(LINE_MAGICS), order=60)
def _line_magic(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    edit_solution(nb, function, lambda s: f"{LINE_MAGICS[style]}\n{s}")
    return True


@feature("line-endings", ("crlf", "cr", "crlf-every-code-cell"), order=70)
def _line_endings(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    ending = "\r" if style == "cr" else "\r\n"
    cells = ([c for c in nb["cells"] if c["cell_type"] == "code"] if style.endswith("every-code-cell")
             else [solution(nb, function)])
    for cell in cells:
        cell["source"] = text(cell).replace("\n", ending)
    return True


# -- cells added around the exercise

SCRATCH = {
    "call-and-print": "p = {f}([2, 3, 1])\nprint({{k: v.shape for k, v in p.items()}})\n",
    "raises": "x = {f}([2, 3, 1])\nraise ValueError('just checking what happens')\n",
    "zero-division": "ratio = 1 / 0\n",
    "stderr": "import sys\nprint('note to self: ask about He', file=sys.stderr)\n",
    "warning": "import warnings\nwarnings.warn('scratch cell warning')\n",
    "reseed": "np.random.seed(0)\n",
    "shape-check": "{f}([4, 1])['W1'].shape\n",
}


@feature("scratch-cell", tuple(f"{kind}@{where}" for kind in SCRATCH for where in PLACES), order=80)
def _scratch(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    kind, where = style.split("@")
    place(nb, new_cell(rng, SCRATCH[kind].format(f=function)), function, where)
    return True


@feature("del-name", ("between", "below"), order=80)
def _del_name(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    """A scratch cell deletes the function: between the solution and its tests (the tests then
    fail top to bottom) or below them (no effect)."""
    place(nb, new_cell(rng, f"del {function}\n"), function, style)
    return True


REDEFINITIONS = {"wrong-def": "def {f}(layers_dims):\n    return {{}}\n", "none": "{f} = None\n",
                 "stub": "def {f}(layers_dims):\n    raise NotImplementedError()\n"}


@feature("redefined-after-tests", tuple(f"{kind}@{where}" for kind in REDEFINITIONS for where in ("below", "end")),
         order=80)
def _redefined(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    kind, where = style.split("@")
    place(nb, new_cell(rng, REDEFINITIONS[kind].format(f=function)), function, where)
    return True


@feature("solution-below-tests", ("moved",), order=85)
def _solution_below(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    """The solution cell moved below the exercise's tests (a top-to-bottom run calls it too early)."""
    target = last_test(nb, function)  # after the pop below, the cell lands just below that test
    nb["cells"].insert(target, nb["cells"].pop(index_of(nb, function)))
    return True


@feature("defined-at-end", ("moved",), order=85)
def _defined_at_end(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    """The solution cell emptied and its code pasted into a new last cell, below every test."""
    cell = solution(nb, function)
    code, cell["source"] = text(cell), "# moved to the end of the notebook\n"
    nb["cells"].append(new_cell(rng, code))
    return True


# -- mangled cells and metadata (last)

@feature("delete-markdown", ("some",), order=90, whole_notebook=True)
def _delete_markdown(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    markdown = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"]
    gone = set(rng.sample(markdown, rng.randint(1, min(4, len(markdown)))))
    nb["cells"] = [c for i, c in enumerate(nb["cells"]) if i not in gone]
    return True


@feature("delete-demo-cell", ("plot_zeros", "symmetry_demo", "plot_random", "saturation_demo", "plot_he",
                              "results_table", "train_zeros", "load_data"), order=90, whole_notebook=True)
def _delete_demo(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    if not any(grade_id(c) == style for c in nb["cells"]):
        return False
    del nb["cells"][index_of(nb, style)]
    return True


@feature("delete-setup-cell", ("setup",), order=90, whole_notebook=True)
def _delete_setup(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    del nb["cells"][index_of(nb, style)]
    return True


@feature("outputs-and-counts", ("stale",), order=90, whole_notebook=True)
def _outputs(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    """Stale outputs and execution counts, as a saved notebook has them."""
    for n, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = n + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "old output\n"}]
    return True


@feature("delete-test-cells", ("public", "hidden", "both"), recovery="nbgrader#1682", order=95)
def _delete_tests(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    public, hidden = EXERCISES[function].tests
    gone = {"public": {public}, "hidden": {hidden}, "both": {public, hidden}}[style]
    nb["cells"] = [c for c in nb["cells"] if grade_id(c) not in gone]
    return True


@feature("duplicate-solution-cell", ("copy-below", "copy-above", "stub-copy-above", "stub-copy-below"),
         recovery="nbgrader#1083", order=95)
def _duplicate_solution(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    """The solution cell copied (same grade id), above or below the original: a copy of the
    student's code, or the release's stub (jupyter/nbgrader#1083).  nbgrader's DeduplicateIds
    keeps the last copy, whichever it is."""
    at = index_of(nb, function)
    cell = copy.deepcopy(nb["cells"][at])
    cell["id"] = new_cell(rng, "")["id"]
    if style.startswith("stub-"):
        cell["source"] = text(release_cell(function))
    nb["cells"].insert(at if style.endswith("above") else at + 1, cell)
    return True


@feature("duplicate-test-cell", ("public-below", "public-above", "hidden-below", "hidden-above"),
         recovery="nbgrader#1083", order=96)
def _duplicate_test(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    """A test cell copied (same grade id), above or below the original: nbgrader's
    DeduplicateIds grades the last copy, and the others run as ordinary cells."""
    test = EXERCISES[function].tests[style.startswith("hidden")]
    if test not in present_tests(nb, function):
        return False
    at = index_of(nb, test)
    cell = copy.deepcopy(nb["cells"][at])
    cell["id"] = new_cell(rng, "")["id"]
    nb["cells"].insert(at if style.endswith("above") else at + 1, cell)
    return True


@feature("solution-as-markdown", ("markdown", "raw"), recovery="nbgrader#1941", order=97)
def _as_markdown(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    cell = solution(nb, function)
    cell["cell_type"] = style
    cell.pop("outputs", None), cell.pop("execution_count", None)
    return True


@feature("strip-solution-metadata", ("solution",), order=98)
def _strip_solution(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    solution(nb, function)["metadata"] = {}
    return True


@feature("strip-all-metadata", ("all",), recovery="nbgrader#1398", order=99, whole_notebook=True)
def _strip_all(nb: dict, function: str, style: str, rng: random.Random) -> bool:
    for cell in nb["cells"]:
        cell["metadata"] = {}
    return True


# ----------------------------------------------------------------------------- the class

def _variant_pick(rng: random.Random) -> dict[str, str]:
    pick = {}
    for function, exercise in EXERCISES.items():
        correct = [v.name for v in exercise.variants if v.name.startswith("correct")]
        pick[function] = rng.choice(correct) if rng.random() < P_CORRECT else rng.choice([v.name for v in exercise.variants])
    return pick


def allowed_styles(without: Collection[str] = ()) -> dict[str, tuple[str, ...]]:
    """{feature: its styles} minus what ``without`` names ("feature" or "feature:style")."""
    allowed = {name: tuple(s for s in f.styles if f"{name}:{s}" not in without)
               for name, f in FEATURES.items() if name not in without}
    return {name: styles for name, styles in allowed.items() if styles}


Plan = tuple[dict[str, str], list[tuple[str, str, str]]]  # variants, [(feature, function, style)]


def plan_class(count: int, seed: int, styles: dict[str, tuple[str, ...]]) -> list[Plan]:
    """First a cover, on otherwise correct notebooks, cycling through the exercises: every
    (feature, style) alone once when the class is at least twice that long, else every feature
    once, two to a notebook.  Then random mixtures of one to four features on random variants."""
    rng = random.Random(seed)
    functions = list(EXERCISES)
    pairs = [(name, style) for name, options in styles.items() for style in options]
    correct = {f: "correct" for f in EXERCISES}
    if count >= 2 * len(pairs):
        plans: list[Plan] = [(dict(correct), [(name, functions[i % len(functions)], style)])
                             for i, (name, style) in enumerate(pairs)]
    else:  # a small sample: two features per notebook, on two different exercises
        pairs = [(name, rng.choice(options)) for name, options in styles.items()]
        plans = [(dict(correct), [(name, functions[(i + j) % len(functions)], style)
                                  for j, (name, style) in enumerate(pairs[i:i + 2])])
                 for i in range(0, len(pairs), 2)]
    while len(plans) < count:
        chosen = rng.sample(sorted(styles), rng.randint(1, min(4, len(styles))))
        plans.append((_variant_pick(rng), [(name, rng.choice(functions), rng.choice(styles[name])) for name in chosen]))
    return plans[:count]


def make_notebook(release: dict, variants: dict[str, str], wanted: list[tuple[str, str, str]],
                  rng: random.Random) -> tuple[dict, list[tuple[str, str, str]]]:
    """The notebook, and the features that applied as (feature, function or "*", style)."""
    nb = classroom.make_notebook(release, EXERCISES, variants)
    applied = []
    for name, function, style in sorted(wanted, key=lambda w: FEATURES[w[0]].order):
        if FEATURES[name].apply(nb, function, style, rng):
            applied.append((name, "*" if FEATURES[name].whole_notebook else function, style))
    if rng.random() < 0.5:  # as Jupyter saves them: each source a list of lines
        for cell in nb["cells"]:
            cell["source"] = text(cell).splitlines(keepends=True)
    return nb, applied


def fuzz_class(course_dir: Path, count: int = 300, seed: int = 0, without: Collection[str] = ()) -> dict[str, dict]:
    """Write the submissions under course_dir/submitted/ and fuzz_manifest.json; the manifest
    {student: {"variants": {function: variant}, "features": [[feature, function or "*", style], ...]}}."""
    release = _release()
    rng = random.Random(seed + 1)
    manifest = {}
    for index, (variants, wanted) in enumerate(plan_class(count, seed, allowed_styles(without))):
        nb, applied = make_notebook(release, variants, wanted, rng)
        student = f"f{index:03d}"
        folder = course_dir / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                                                    encoding="utf-8")
        (folder / "timestamp.txt").write_text(classroom.TIMESTAMP + "\n")
        manifest[student] = {"variants": variants, "features": [list(a) for a in applied]}
    (course_dir / "fuzz_manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


# ----------------------------------------------------------------------------- comparison

TESTS = [t for exercise in EXERCISES.values() for t in exercise.tests]
TEST_OF = {t: f for f, exercise in EXERCISES.items() for t in exercise.tests}


@dataclass(frozen=True)
class CellResult:
    student: str
    cell: str
    nbgrader: float | None  # None: nbgrader recorded no score for it
    coursekit: float | None
    verdict: str  # "agree", "recovery", "disagree"
    features: tuple[str, ...]  # "feature:style" of the notebook's features that touch this cell


def _touches(entry: list, cell: str) -> bool:
    name, function, _ = entry
    return function == "*" or TEST_OF[cell] == function


def compare(manifest: dict[str, dict], stock: dict, fast: dict, reasons: dict[str, str],
            nbgrader_failed: Collection[str] = ()) -> list[CellResult]:
    """One CellResult per (student, test cell) of the manifest.  A recovery covers the cells its
    feature touches, or the whole notebook when nbgrader could not grade the notebook at all."""
    out = []
    for student, entry in sorted(manifest.items()):
        for cell in TESTS:
            ours, theirs = fast.get((student, cell)), stock.get((student, cell))
            touching = [e for e in entry["features"] if _touches(e, cell)]
            recoveries = entry["features"] if student in nbgrader_failed else touching
            if ours == theirs:
                verdict = "agree"
            elif any((recovery := FEATURES[e[0]].recovery) and recovery in reasons.get(student, "")
                     for e in recoveries):
                verdict = "recovery"
            else:
                verdict = "disagree"
            out.append(CellResult(student, cell, theirs, ours, verdict, tuple(f"{e[0]}:{e[2]}" for e in touching)))
    return out


def agreement_table(manifest: dict[str, dict], results: list[CellResult]) -> str:
    """Per feature (and in total): notebooks, cells compared, equal, recoveries, disagreements."""
    rows: dict[str, Counter] = {}
    for r in results:
        for name in {f.split(":")[0] for f in r.features} or ("(no feature on this exercise)",):
            rows.setdefault(name, Counter())[r.verdict] += 1
    notebooks = Counter(e[0] for entry in manifest.values() for e in {tuple(x[:1]) for x in entry["features"]})
    total = Counter(r.verdict for r in results)
    width = max(len(n) for n in list(rows) + ["feature"]) + 2
    lines = [f"{'feature':<{width}}{'notebooks':>10}{'cells':>7}{'equal':>7}{'recovery':>10}{'differ':>8}"
             f"{'agreement*':>12}"]
    def line(name: str, n: int | str, c: Counter) -> str:
        cells = sum(c.values())
        judged = cells - c["recovery"]
        pct = f"{100 * c['agree'] / judged:.1f} %" if judged else "-"
        return f"{name:<{width}}{n:>10}{cells:>7}{c['agree']:>7}{c['recovery']:>10}{c['disagree']:>8}{pct:>12}"
    for name in sorted(rows, key=lambda n: (n.startswith("("), n)):
        lines.append(line(name, notebooks.get(name, ""), rows[name]))
    lines.append(line("all cells", len(manifest), total))
    lines.append("* equal / (cells - recoveries); a feature's row counts the test cells of the exercise it touched")
    return "\n".join(lines)


def describe(entry: dict) -> str:
    """A notebook's features in one line, e.g. "exec-definition(he: exec); line-endings(zeros: cr)"."""
    return "; ".join(f"{n}({f if f == '*' else SHORT[f]}: {d})" for n, f, d in entry["features"])


def disagreeing_styles(results: list[CellResult]) -> str:
    """Each feature:style found on disagreeing cells, with how many such cells had it alone."""
    seen: Counter = Counter()
    alone: Counter = Counter()
    for r in results:
        if r.verdict == "disagree":
            seen.update(r.features)
            if len(r.features) == 1:
                alone.update(r.features)
    return "\n".join(f"  {style:<45} {seen[style]:>4} cells, {alone[style]:>3} with no other feature"
                     for style in sorted(seen))


def listing(manifest: dict[str, dict], results: list[CellResult], verdict: str) -> str:
    return "\n".join(f"  {r.student} {r.cell:<20} nbgrader {r.nbgrader} coursekit {r.coursekit}   "
                     f"[{describe(manifest[r.student])}]" for r in results if r.verdict == verdict)


# ----------------------------------------------------------------------------- both graders

def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


_REMOVED = re.compile(r"Removing failed assignment: .*[/\\]([^/\\]+)[/\\]" + re.escape(ASSIGNMENT) + r"\s*$", re.M)


def nbgrader_autograde(course: Path, env: dict) -> tuple[int, dict[str, str]]:
    """`nbgrader autograde` over every student, as one batch.

    nbgrader 0.9.6 carries on after most failures, but a notebook whose metadata it cannot
    validate (SchemaTooOldError, e.g. after duplicated grade ids) stops the whole batch and the
    students after it are never tried.  Such a student is set aside and the batch started again
    (nbgrader skips what it already graded).  Returns the number of runs and {student: why
    nbgrader graded nothing}."""
    aside = course.parent / f"{course.name}-set-aside"
    failed: dict[str, str] = {}
    runs = 0
    try:
        while True:
            runs += 1
            proc = _run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--log-level=WARN"], course, env)
            removed = _REMOVED.findall(proc.stderr)
            stopped = "nbgrader update" in proc.stderr or "newer version" in proc.stderr
            for student in removed:
                failed[student] = "nbgrader stopped the batch here (metadata it cannot validate)" \
                    if stopped and student == removed[-1] else "nbgrader could not grade it"
            if not (stopped and removed):
                break
            for student in removed:  # never try them again
                aside.mkdir(exist_ok=True)
                shutil.move(str(course / "submitted" / student), str(aside / student))
    finally:
        if aside.is_dir():
            for folder in aside.iterdir():
                shutil.move(str(folder), str(course / "submitted" / folder.name))
            aside.rmdir()
    return runs, failed


def coursekit_autograde(course: Path, env: dict, workers: int | None = None) -> dict[str, str]:
    """`coursekit autograde --json` over every student; {student: reason}."""
    ck = _run([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json", "--force"]
              + (["--workers", str(workers)] if workers else []), course, env)
    if ck.returncode not in (0, 1):
        raise RuntimeError(f"coursekit autograde failed (exit {ck.returncode}):\n{ck.stderr[-3000:]}")
    reasons = {}
    for line in ck.stdout.splitlines():
        if line.strip().startswith("{"):
            result = json.loads(line)
            reasons[result["student"]] = result.get("reason") or ""
    return reasons


def nbgrader_reference(template: Path, base: Path, env: dict, jobs: int = 1) -> dict:
    """Stock nbgrader's grades of the class: `jobs` copies of the course, each graded by batch runs
    of `nbgrader autograde` over its share of the students, side by side.  Returns {"scores":
    {(student, cell): score}, "failed": {student: why}, "runs": batch runs, "seconds": wall time}."""
    students = sorted(p.name for p in (template / "submitted").iterdir())
    copies = []
    for k in range(jobs):
        course = copy_course(template, base / ("nbgrader" if jobs == 1 else f"nbgrader-{k + 1}"))
        for student in set(students) - set(students[k::jobs]):
            shutil.rmtree(course / "submitted" / student)
        copies.append(course)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        outcomes = list(pool.map(lambda course: nbgrader_autograde(course, env), copies))
    scores: dict = {}
    for course in copies:
        scores.update(gradebook_scores(course))
    return {"scores": scores, "failed": {s: why for _, failed in outcomes for s, why in failed.items()},
            "runs": sum(runs for runs, _ in outcomes), "seconds": time.perf_counter() - start}


def course_digest(course: Path, files: Collection[str] = ("nbgrader_config.py", "source")) -> str:
    """What nbgrader's grades depend on besides the submissions: the configuration and the master."""
    digest = hashlib.sha256()
    for name in sorted(files):
        paths = sorted(p for p in (course / name).rglob("*") if p.is_file()) if (course / name).is_dir() else [course / name]
        for path in paths:
            if ".ipynb_checkpoints" not in path.parts and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(course)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def save_reference(path: Path, reference: dict, digest: str) -> None:
    path.write_text(json.dumps({**reference, "course_digest": digest,
                                "scores": [[s, c, v] for (s, c), v in sorted(reference["scores"].items())]}) + "\n")


def load_reference(path: Path, digest: str) -> dict:
    saved = json.loads(path.read_text())
    if saved["course_digest"] != digest:
        sys.exit(f"{path}: nbgrader graded another course than the one kept beside it; run without --reuse")
    return {**saved, "scores": {(s, c): v for s, c, v in saved["scores"]}}


def partial_reference(base: Path) -> dict:
    """nbgrader's grades so far, from the course copies of a run still under way."""
    scores: dict = {}
    for course in sorted(base.glob("nbgrader*")):
        if course.is_dir():
            graded = gradebook_scores(course)
            # A batch grades students in sorted order; its last one may still be running.
            last = max((student for student, _ in graded), default=None)
            scores.update({key: score for key, score in graded.items() if key[0] != last})
    # A student nbgrader could not grade has its submission but no score at all.
    students = {student for student, _ in scores}
    failed = {s: "nbgrader recorded no score" for s in students
              if all(v is None for (student, _), v in scores.items() if student == s)}
    return {"scores": scores, "failed": failed, "runs": 0, "seconds": float("nan")}


def main() -> int:  # noqa: PLR0915 (the command's options, then its steps in order)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="notebooks (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--without", nargs="*", default=[], metavar="FEATURE[:STYLE]",
                        help="leave these features (or one style of a feature) out")
    parser.add_argument("--workers", type=int, help="coursekit worker processes (default: one per core)")
    parser.add_argument("--nbgrader-jobs", type=int, default=1, metavar="N",
                        help="split the class into N batches that stock nbgrader grades side by side (default 1)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the courses in DIR and keep them, with "
                        "nbgrader's grades in DIR/nbgrader.json")
    parser.add_argument("--reuse", type=Path, metavar="DIR", help="take the class and nbgrader's grades from an "
                        "earlier --keep DIR (the course must be unchanged) and grade again with coursekit only")
    parser.add_argument("--json", type=Path, help="write every cell's result here")
    args = parser.parse_args()
    env = nbgrader_env()

    base = args.reuse or args.keep or Path(tempfile.mkdtemp(prefix="coursekit-fuzz-"))
    try:
        template = base / "template"
        if args.reuse:
            # Both graders grade the kept copy of the course, whatever happened to the course since.
            digest = course_digest(template)
            if digest != course_digest(ROOT):
                print(f"note: {ROOT / 'source'} or nbgrader_config.py changed since this class was graded; "
                      f"the comparison is on the course kept in {template}", flush=True)
            manifest = json.loads((template / "fuzz_manifest.json").read_text())
            if (base / "nbgrader.json").is_file():
                reference = load_reference(base / "nbgrader.json", digest)
            else:  # nbgrader is still grading (or was stopped): compare what it has graded so far
                reference = partial_reference(base)
                manifest = {s: e for s, e in manifest.items() if any(k[0] == s for k in reference["scores"])}
                print(f"PARTIAL: nbgrader has graded {len(manifest)} notebooks so far", flush=True)
            shutil.rmtree(base / "coursekit", ignore_errors=True)
            print(f"{len(manifest)} notebooks from {base}; nbgrader's grades from {base}", flush=True)
        else:
            build_template(template)
            digest = course_digest(template)
            manifest = fuzz_class(template, args.count, args.seed, args.without)
            print(f"{len(manifest)} notebooks (seed {args.seed}); grading with nbgrader autograde (about 6 s each, "
                  f"{args.nbgrader_jobs} batch{'es' if args.nbgrader_jobs > 1 else ''} side by side) ...", flush=True)
            reference = nbgrader_reference(template, base, env, args.nbgrader_jobs)
            if args.keep:
                save_reference(base / "nbgrader.json", reference, digest)
        fast = copy_course(template, base / "coursekit")
        start = time.perf_counter()
        reasons = coursekit_autograde(fast, env, args.workers)
        seconds = time.perf_counter() - start
        results = compare(manifest, reference["scores"], gradebook_scores(fast), reasons,
                          reference["failed"])
        failed = reference["failed"]
        print(f"nbgrader autograde: {reference['seconds']:.0f} s ({reference['runs']} batch runs; {len(failed)} "
              f"notebooks it could not grade{': ' if failed else ''}{', '.join(sorted(failed))}); "
              f"coursekit autograde: {seconds:.1f} s\n")
        print(agreement_table(manifest, results))
        styles = disagreeing_styles(results)
        if styles:
            print(f"\nfeature:style on disagreeing cells\n{styles}")
        for verdict, title in (("recovery", "documented recoveries"), ("disagree", "DISAGREEMENTS")):
            rows = listing(manifest, results, verdict)
            print(f"\n{title}: {sum(r.verdict == verdict for r in results)} cells" + (f"\n{rows}" if rows else ""))
        if args.json:
            args.json.write_text(json.dumps({"manifest": manifest, "reasons": reasons, "cells": [
                r.__dict__ for r in results]}, indent=1, ensure_ascii=False) + "\n")
        differ = sum(r.verdict == "disagree" for r in results)
        print("\nRESULT:", "100 % agreement outside the listed recoveries" if not differ
              else f"{differ} cells disagree")
        return 1 if differ else 0
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
