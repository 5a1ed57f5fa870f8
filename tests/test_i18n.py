"""One master, four languages: complete catalogues, releases in sync, the same grades everywhere,
and standalone notebooks that run with nothing beside them.

The languages' assignments are built by scripts/i18n.py (`make release`); these tests rebuild
them in memory or in a temporary course with the real nbgrader and compare.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from scripts import i18n
from scripts.course import MASTER, ROOT
from scripts.courses import generate_assignment, gradebook_scores, new_course
from scripts.student_work import CORRECT, solve
from tests.helpers import copy_course, coursekit, nbgrader_autograde, submit

LANGUAGES = ["tr", "pt_BR", "zh_CN"]
EVERY = [None, *LANGUAGES]  # None: the English master
names = {language: i18n.assignment_of(language) for language in EVERY}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def cells(nb: dict) -> list[tuple]:
    return [(c["cell_type"], "".join(c["source"]), c.get("metadata", {}).get("nbgrader")) for c in nb["cells"]]


# --- catalogues ---------------------------------------------------------------------------------

def test_the_three_languages_have_catalogues():
    assert i18n.languages() == sorted(LANGUAGES)


def test_template_is_extracted_from_the_current_master():
    assert i18n.TEMPLATE.read_bytes() == i18n.po_bytes(i18n.template()), \
        "locale/course.pot is out of date: run `make release` (or `python -m scripts.i18n update`)"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_translates_every_entry_without_fuzzy_or_damaged_ones(language):
    assert i18n.problems(language) == []


def test_a_translation_that_changes_a_formula_or_a_field_is_damage():
    assert i18n.damage("the cost $-\\log(0.5)$ is `inf`", "maliyet $-\\log(0,5)$ `inf`", markdown=True) \
        == ["formula changed: missing ['$-\\\\log(0.5)$'], added ['$-\\\\log(0,5)$']"]
    assert i18n.damage("layer {l} uses ×{used}", "katman {k}, ×{used}", markdown=False)
    assert i18n.damage("{'first cost':>12}", "{'ilk maliyet':>12}", markdown=False) == []


# --- source folders and releases ----------------------------------------------------------------

def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_source_is_the_master_translated_by_its_catalogue(language):
    folder = ROOT / "source" / names[language]
    built = i18n.translate_notebook(nbformat.read(MASTER, 4), i18n.translator(i18n.load(language)), language)
    assert cells(read_json(folder / f"{names[language]}.ipynb")) == cells(built), \
        f"source/{names[language]}/ is out of date: run `make release`"
    helpers = i18n.helper_files(language)
    assert files_under(folder) == set(helpers) | {f"{names[language]}.ipynb"}
    for name, data in helpers.items():
        assert (folder / name).read_bytes() == data, f"source/{names[language]}/{name} drifted: run `make release`"


@pytest.mark.parametrize("folder", ["source", "release"])
def test_master_and_its_release_carry_every_compiled_catalogue(folder):
    for name, data in i18n.helper_files(None).items():
        assert (ROOT / folder / i18n.ASSIGNMENT / name).read_bytes() == data, name
    assert not (ROOT / folder / i18n.ASSIGNMENT / "locale" / "LANGUAGE").exists()  # English by default


def skeleton(source: str, graded: bool) -> str:
    """The code of a cell with its words blanked: docstrings, and unless graded every literal."""
    tree = ast.parse(i18n._blank_magics(source))
    docstrings = i18n._docstrings(tree)

    class Blank(ast.NodeTransformer):
        def visit_Constant(self, node):
            return ast.Constant("") if isinstance(node.value, str) and (not graded or id(node) in docstrings) else node

        def visit_JoinedStr(self, node):
            return node if graded else ast.Constant("")
    return ast.dump(Blank().visit(tree))


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_changes_words_only(language):
    master = nbformat.read(MASTER, 4)
    translated = nbformat.read(ROOT / "source" / names[language] / f"{names[language]}.ipynb", 4)
    assert [(c.cell_type, c.metadata.get("nbgrader")) for c in translated.cells] == \
           [(c.cell_type, c.metadata.get("nbgrader")) for c in master.cells]
    for ours, theirs in zip(translated.cells, master.cells):
        if ours.cell_type == "code":
            graded = i18n._is_graded(theirs)
            assert skeleton(ours.source, graded) == skeleton(theirs.source, graded), theirs.source[:200]
    assert sum(a.source != b.source for a, b in zip(translated.cells, master.cells)) > len(master.cells) // 2


@pytest.fixture(scope="module")
def generated_course(tmp_path_factory):
    """A course copy in which the real nbgrader generated all four assignments (and their gradebook)."""
    course = new_course(tmp_path_factory.mktemp("languages") / "course")
    for language in EVERY:
        generate_assignment(course, "--force", "--log-level=WARN", assignment=names[language])
    return course


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_release_is_what_nbgrader_generates_from_its_source(generated_course, language):
    name = names[language]
    ours, theirs = ROOT / "release" / name, generated_course / "release" / name
    assert cells(read_json(ours / f"{name}.ipynb")) == cells(read_json(theirs / f"{name}.ipynb")), \
        f"release/{name}/ is out of date: run `make release`"
    assert files_under(ours) == files_under(theirs)
    for relative in files_under(theirs) - {f"{name}.ipynb"}:
        assert (ours / relative).read_bytes() == (theirs / relative).read_bytes(), relative


# --- the messages' language ---------------------------------------------------------------------

def public_tests_of(assignment: str, tag: str):
    """The public_tests.py that students of ``assignment`` get, imported from its release folder."""
    spec = importlib.util.spec_from_file_location(f"public_tests_{tag}", ROOT / "release" / assignment / "public_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xavier(layers_dims):
    np.random.seed(3)
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", np.random.randn(layers_dims[l], layers_dims[l - 1]) * np.sqrt(1 / layers_dims[l - 1])),
        (f"b{l}", np.zeros((layers_dims[l], 1))))}


def zeros(layers_dims):
    return {k: v * 0 for k, v in xavier(layers_dims).items()}


XAVIER = "values look like Xavier scaling sqrt(1/n); He uses sqrt(2/n), with n = layers_dims[l-1]"


def message(module, **kwargs) -> str:
    with pytest.raises(AssertionError) as failure:
        module.initialize_parameters_he_test(xavier, **kwargs)
    return str(failure.value)


def translation_of(msgid: str, language: str) -> str:
    translated = i18n.load(language)[msgid].string
    assert translated and translated != msgid
    return translated


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_release_speaks_its_own_language_by_default(language, monkeypatch):
    monkeypatch.delenv("COURSE_LANGUAGE", raising=False)
    assert translation_of(XAVIER, language) in message(public_tests_of(names[language], language))


def test_english_release_speaks_english_by_default(monkeypatch):
    monkeypatch.delenv("COURSE_LANGUAGE", raising=False)
    assert XAVIER in message(public_tests_of(i18n.ASSIGNMENT, "en"))


def test_students_choose_the_language_by_argument_or_environment_variable(monkeypatch, capsys):
    turkish = public_tests_of(names["tr"], "tr-choice")
    assert translation_of(XAVIER, "pt_BR") in message(turkish, language="pt-BR")
    monkeypatch.setenv("COURSE_LANGUAGE", "zh_CN")
    assert translation_of(XAVIER, "zh_CN") in message(turkish)
    assert translation_of(XAVIER, "pt_BR") in message(turkish, language="pt_BR")  # the argument wins
    monkeypatch.setenv("COURSE_LANGUAGE", "en")
    assert XAVIER in message(turkish)
    monkeypatch.setenv("COURSE_LANGUAGE", "xx")  # no such catalogue: English, not a crash
    assert XAVIER in message(turkish)
    turkish.initialize_parameters_zeros_test(zeros, language="tr")
    assert capsys.readouterr().out.strip() == translation_of("All tests passed.", "tr")


# --- standalone notebooks -----------------------------------------------------------------------

@pytest.mark.parametrize("language", EVERY)
def test_standalone_notebook_is_up_to_date(language):
    assert read_json(i18n.standalone_path(language)) == json.loads(json.dumps(i18n.standalone_notebook(language))), \
        "standalone/ is out of date: run `make release`"


SEED_HE_COSTS = ["0.8830537463419761", "0.07357895962677366"]
SEED_ACCURACY = {"train_zeros": ["0.5", "0.5"], "train_random": ["0.83", "0.86"],
                 "train_he": ["0.9933333333333333", "0.96"]}


def decimals(text: str) -> list[str]:
    return re.findall(r"\d+\.\d+", text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_standalone_notebook_alone_in_an_empty_folder_reproduces_the_masters_numbers(language, tmp_path):
    """Solved, executed by a fresh kernel with nothing beside it: the lesson's costs and accuracies.

    The translated ones: their code went through the catalogue (the English one is built the same way)."""
    path = tmp_path / i18n.standalone_path(language).name
    path.write_text(json.dumps(solve(read_json(i18n.standalone_path(language)), CORRECT)), encoding="utf-8")
    nb = nbformat.read(path, 4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = {c.metadata.get("nbgrader", {}).get("grade_id"): "".join(
        o.get("text", "") for o in c.get("outputs", []) if o.get("name") == "stdout") for c in nb.cells}
    assert files_under(tmp_path) == set(i18n.helper_files(language)) | {path.name}
    for grade_id, accuracies in SEED_ACCURACY.items():
        assert decimals(text[grade_id])[-2:] == accuracies, grade_id
    zeros = decimals(text["train_zeros"])[:-2]
    assert len(zeros) == 15 and {round(float(c), 12) for c in zeros} == {0.693147180560}
    # the 15 cost lines come first: the caption under the plot has numbers too
    he = decimals("".join(text["train_he"].splitlines(keepends=True)[:15]))
    assert len(he) == 15 and he[0] == SEED_HE_COSTS[0]
    assert float(he[-1]) == pytest.approx(float(SEED_HE_COSTS[1]), rel=1e-9)  # BLAS: last digits may move
    # the 14th decimal is the cost at iteration 14000 (iteration 0's is inf; the caption's numbers follow)
    assert "inf" in text["train_random"] and float(decimals(text["train_random"])[13]) == pytest.approx(0.38277, rel=0.01)
    warnings = [o["text"] for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not [w for w in warnings if "missing from font" in w], "a figure drew boxes instead of characters"


# --- grading: the same scores in every language, with nbgrader and with coursekit ---------------

WRONG = {  # layers_dims[1] for every layer in zeros; right random; Xavier instead of He
    "initialize_parameters_zeros": CORRECT["initialize_parameters_zeros"].replace("layers_dims[l], layers_dims[l - 1]",
                                                                                "layers_dims[1], layers_dims[l - 1]"),
    "initialize_parameters_random": CORRECT["initialize_parameters_random"],
    "initialize_parameters_he": CORRECT["initialize_parameters_he"].replace("2 /", "1 /"),
}
CELLS = ["test_zeros_public", "test_zeros_hidden", "test_random_public", "test_random_hidden",
         "test_he_public", "test_he_hidden"]
FULL = dict(zip(CELLS, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]))
EXPECTED = {"standalone": FULL,
            "wrong": {**FULL, "test_zeros_public": 0.0, "test_zeros_hidden": 0.0,
                      "test_he_public": 0.0, "test_he_hidden": 0.0}}


def class_of(language: str | None) -> dict[str, dict]:
    """The same two students in every language (nbgrader needs seconds per notebook): the standalone
    notebook solved and submitted as it is, and the release with two mistakes."""
    release = read_json(ROOT / "release" / names[language] / f"{names[language]}.ipynb")
    return {"standalone": solve(read_json(i18n.standalone_path(language)), CORRECT),
            "wrong": solve(release, WRONG)}


@pytest.fixture(scope="module")
def graded(generated_course, tmp_path_factory):
    """Every language's class graded once by `nbgrader autograde` and once by `coursekit autograde`."""
    for language in EVERY:
        for student, notebook in class_of(language).items():
            submit(generated_course, student, notebook, assignment=names[language])
    base = tmp_path_factory.mktemp("graded")
    stock, fast = copy_course(generated_course, base / "stock"), copy_course(generated_course, base / "fast")
    reports = {}
    for language in EVERY:
        nbgrader_autograde(stock, "--log-level=ERROR", assignment=names[language])
        reports[language] = {r["student"]: r for r in coursekit(fast, assignment=names[language])}
    return stock, fast, reports


def by_student(scores: dict) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for (student, cell), score in scores.items():
        table.setdefault(student, {})[cell] = score or 0.0
    return table


@pytest.mark.slow
@pytest.mark.parametrize("grader", ["nbgrader", "coursekit"])
@pytest.mark.parametrize("language", EVERY)
def test_every_language_gets_the_same_scores(graded, grader, language):
    course = graded[0] if grader == "nbgrader" else graded[1]
    assert by_student(gradebook_scores(course, assignment=names[language])) == EXPECTED


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
def test_both_graders_show_the_test_messages_in_the_assignments_language(graded, language):
    stock, _, reports = graded
    expected = translation_of(XAVIER, language)
    assert expected in reports[language]["wrong"]["cells"]["test_he_public"]["message"]
    autograded = stock / "autograded" / "wrong" / names[language] / f"{names[language]}.ipynb"
    assert expected in autograded.read_text(encoding="utf-8")


def test_a_chinese_figure_draws_every_character():
    """Run in the Chinese release, as a student would: matplotlib warns "Glyph ... missing from font(s)"
    for every character it can only draw as a box, and here that warning is an error."""
    code = """
import io, re, warnings
warnings.filterwarnings("error", message=".*missing from font")
import init_utils
X, Y, _, _ = init_utils.load_dataset()
title = init_utils._("Cost, {rule}, s = {s}").format(rule="s × He", s="1")
assert re.search("[\\u4e00-\\u9fff]", title), title
fig = init_utils.exploration_figure(X, Y, [(0.001, "lecun")], title=title)
fig.savefig(io.BytesIO(), format="png", dpi=40)
print("drawn:", title)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "release" / "initialization-zh_CN",
                            capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"}, timeout=120)
    assert result.returncode == 0 and "drawn:" in result.stdout, result.stderr


DEBIAN_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")  # from fonts-noto-cjk (`make hub-env`)


@pytest.mark.skipif(not DEBIAN_CJK.is_file(), reason="Debian's fonts-noto-cjk is not installed (`sudo make hub-env` installs it)")
def test_a_hub_with_debians_cjk_font_draws_chinese_with_it(tmp_path):
    """Where the hub image has fonts-noto-cjk, matplotlib finds Noto Sans CJK SC there (in its
    collection file, which holds the Japanese, Korean and Chinese faces) before the mplfonts wheel is
    looked at, and draws every character."""
    code = """
import io, warnings
warnings.filterwarnings("error", message=".*missing from font")
import init_utils
from matplotlib import font_manager
plt = init_utils.pyplot()
print("font:", font_manager.findfont(font_manager.FontProperties(family=init_utils.CJK_FAMILY), fallback_to_default=False))
fig, ax = plt.subplots()
ax.set_title(init_utils._("iteration"))
fig.savefig(io.BytesIO(), format="png", dpi=40)
print("drawn:", ax.get_title())
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "release" / "initialization-zh_CN", capture_output=True,
                            text=True, env={**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"font: {DEBIAN_CJK}\n" in result.stdout and f"drawn: {translation_of('iteration', 'zh_CN')}\n" in result.stdout
