"""One English master, one nbgrader assignment and one standalone notebook per language.

    python -m scripts.i18n extract        # locale/course.pot: every message of the master and public_tests.py
    python -m scripts.i18n init LANG      # locale/LANG/LC_MESSAGES/course.po, a new empty catalogue
    python -m scripts.i18n update         # extract, then merge the template into every catalogue
    python -m scripts.i18n build          # source/initialization-LANG/ and the helpers' .mo files
    python -m scripts.i18n standalone     # standalone/<assignment>.ipynb from each release
    python -m scripts.i18n check          # list untranslated, fuzzy and damaged entries; exit 1 if any

`make release` runs update, build, nbgrader generate_assignment for every assignment, then standalone.

Design.  Translators edit gettext catalogues (PO files, read and written with Babel), never notebooks.
The entries are:
- each markdown cell of the master, whole;
- in code cells, the words only: comments, docstrings, and string literals that are shown to the
  student (arguments of print, titles and labels, or any literal with two words in a row).  Graded
  cells (solutions and tests) give only their comments and docstrings, so the code nbgrader grades
  is byte for byte the master's;
- every message of public_tests.py, marked there with _() or N_().
A translated notebook is the master with each entry replaced by its msgstr (an entry without one
keeps the English), and every cell keeps its nbgrader metadata: same grade ids, points, locked
cells and hidden tests.  The `check` rules keep formulas and code identical: a translation must
keep the same $math$, `code`, HTML tags and {placeholders} as its msgid.

public_tests.py picks its language at run time from catalogues compiled to .mo files beside it
(see its header); each translated assignment carries every language's .mo and a locale/LANGUAGE
file naming its own, so its messages default to its language.

A standalone notebook is a release notebook with one cell in front that writes the helpers, the data
set and the catalogues (an embedded zip, SHA-256 checked) next to it if they are missing, so it runs
on Colab or any bare Jupyter; its other cells are the release's, nbgrader metadata included.
"""

from __future__ import annotations

import argparse
import ast
import base64
import copy
import hashlib
import io
import json
import re
import shutil
import sys
import tokenize
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import nbformat
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_python
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from scripts.course import ASSIGNMENT, MASTER, ROOT

LOCALE = ROOT / "locale"
DOMAIN = "course"
TEMPLATE = LOCALE / f"{DOMAIN}.pot"
STANDALONE = ROOT / "standalone"
# The helpers every assignment folder holds (the Makefile copies the same list into the master).
HELPERS = ("init_utils.py", "public_tests.py", "datasets/circles.h5")
PYTHON_SOURCES = ("public_tests.py", "init_utils.py")
# Fixed header dates: rebuilding the same text gives the same bytes, so the tests can compare files.
STAMP = datetime(2026, 1, 1, tzinfo=timezone.utc)

# Calls and keywords whose string arguments the student reads.
DISPLAY_CALLS = {"print", "title", "suptitle", "xlabel", "ylabel", "set_title", "set_xlabel",
                 "set_ylabel", "legend", "text", "annotate", "figtext", "Markdown", "HTML"}
DISPLAY_KEYWORDS = {"title", "label", "xlabel", "ylabel", "description", "caption"}
WORDS = re.compile(r"[^\W\d_]{2,}[ \t]+[^\W\d_]{2,}")
NBGRADER_MARKER = re.compile(r"^#+\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)|^#\s*YOUR CODE HERE|^#\s*(noqa|type:)")
LITERAL = re.compile(r"^([A-Za-z]*)('''|\"\"\"|'|\")(.*)\2$", re.S)


def assignment_of(language: str | None) -> str:
    """'initialization' for the English master, 'initialization-tr' for Turkish, ..."""
    return ASSIGNMENT if language is None else f"{ASSIGNMENT}-{language}"


def languages() -> list[str]:
    """Every language with a catalogue: locale/<language>/LC_MESSAGES/course.po."""
    return sorted(p.parent.parent.name for p in LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def catalogue_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po"


# --- finding the words in a code cell ----------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """source[start:end] is one message of a code cell (a comment's text or a literal's body)."""
    start: int
    end: int
    kind: str  # "comment" or "string"


def _blank_magics(source: str) -> str:
    """IPython line magics and shell lines become spaces, so the cell parses and offsets stay put."""
    return "\n".join(" " * len(line) if line.lstrip().startswith(("%", "!")) else line
                     for line in source.split("\n"))


def _line_starts(source: str) -> list[int]:
    starts = [0]
    for line in source.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    return starts


def _offset(source: str, starts: list[int], lineno: int, byte_col: int) -> int:
    """Character offset of an AST position (1-based line, UTF-8 byte column)."""
    line = source[starts[lineno - 1]:starts[lineno]]
    return starts[lineno - 1] + len(line.encode("utf-8")[:byte_col].decode("utf-8"))


def _literal_pieces(segment: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each string literal in a segment ("a" "b" is two; f-strings whole)."""
    wrapped = "(" + segment + ")"  # inside brackets, line breaks and indentation mean nothing
    starts = _line_starts(wrapped)
    depth, opened = 0, 0
    for token in tokenize.generate_tokens(io.StringIO(wrapped).readline):
        begin = starts[token.start[0] - 1] + token.start[1] - 1
        end = starts[token.end[0] - 1] + token.end[1] - 1
        name = tokenize.tok_name[token.type]
        if name == "STRING" and depth == 0:
            yield begin, end
        elif name == "FSTRING_START":  # Python 3.12+: an f-string is several tokens
            depth, opened = depth + 1, begin if depth == 0 else opened
        elif name == "FSTRING_END":
            depth -= 1
            if depth == 0:
                yield opened, end


def _has_words(body: str) -> bool:
    """Words a student reads, not only {fields} or names such as train_X or x1."""
    return bool(re.search(r"[^\W\d_]{2,}", re.sub(r"\w*[_\d]\w*", "", FIELD.sub("", body))))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _shown_strings(tree: ast.AST) -> set[int]:
    """Literals passed to print, plt.title, label=... and the like."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in DISPLAY_CALLS:
                found.update(id(arg) for arg in node.args)
            found.update(id(k.value) for k in node.keywords if k.arg in DISPLAY_KEYWORDS or func in DISPLAY_CALLS)
    return found


def _string_nodes(tree: ast.AST) -> Iterator[ast.expr]:
    """str constants and f-strings, not the parts of an f-string."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            yield node
            continue
        stack.extend(ast.iter_child_nodes(node))


def code_spans(source: str, graded: bool) -> list[Span]:
    """The messages of one code cell, in order.  Graded cells give comments and docstrings only."""
    if source.lstrip().startswith("%%"):
        return []  # a cell magic: its body may not be Python
    parsable = _blank_magics(source)
    try:
        tree = ast.parse(parsable)
    except SyntaxError:
        return []
    spans = []
    starts = _line_starts(source)
    for token in tokenize.generate_tokens(io.StringIO(parsable).readline):
        if token.type == tokenize.COMMENT and not NBGRADER_MARKER.match(token.string):
            text = token.string.lstrip("#").strip()
            if WORDS.search(text):
                end = starts[token.end[0] - 1] + token.end[1]
                spans.append(Span(end - len(token.string) + token.string.index(text), end, "comment"))

    docstrings, shown = _docstrings(tree), _shown_strings(tree)
    for node in _string_nodes(tree):
        value = str(node.value) if isinstance(node, ast.Constant) else ast.unparse(node)
        wanted = id(node) in docstrings or (not graded and (id(node) in shown or WORDS.search(value)))
        if not wanted:
            continue
        assert node.end_lineno is not None and node.end_col_offset is not None  # parsed from source
        start = _offset(source, starts, node.lineno, node.col_offset)
        end = _offset(source, starts, node.end_lineno, node.end_col_offset)
        for begin, finish in _literal_pieces(source[start:end]):
            match = LITERAL.match(source[start + begin:start + finish])
            if match and _has_words(match.group(3)):
                body_start = start + begin + len(match.group(1)) + len(match.group(2))
                spans.append(Span(body_start, body_start + len(match.group(3)), "string"))
    return sorted(spans, key=lambda s: s.start)


def _is_graded(cell: nbformat.NotebookNode) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade") or meta.get("solution"))


# --- messages and catalogues -------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    msgid: str
    location: tuple[str, int]
    note: str  # what the translator is looking at


def notebook_entries(nb: nbformat.NotebookNode, name: str) -> list[Entry]:
    entries = []
    for number, cell in enumerate(nb.cells, start=1):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        where = f"cell {number}" + (f" ({grade_id})" if grade_id else "")
        if cell.cell_type == "markdown" and cell.source.strip():
            entries.append(Entry(cell.source, (name, number), f"{where}: markdown, keep $math$, `code` and tags"))
        elif cell.cell_type == "code":
            for span in code_spans(cell.source, _is_graded(cell)):
                entries.append(Entry(cell.source[span.start:span.end], (name, number),
                                     f"{where}: {span.kind} in code, keep {{fields}}, quotes and escapes"))
    return entries


def python_entries(path: Path) -> list[Entry]:
    with path.open("rb") as source:
        found = extract_python(source, {"_": None, "N_": None}, [], {})
        texts = [(lineno, messages if isinstance(messages, str) or messages is None else messages[0])
                 for lineno, _function, messages, _comments in found]
        # _(variable) translates a message marked elsewhere with N_(); it has no text of its own
        return [Entry(text, (path.name, lineno), "test message, keep {fields} and `code`")
                for lineno, text in texts if text]


def standalone_entries() -> list[Entry]:
    setup = SETUP_CELL + CJK_SETUP
    return [Entry(setup[s.start:s.end], ("standalone", 1), f"standalone set-up cell: {s.kind}")
            for s in code_spans(setup, graded=False)]


def _new_catalog(language: str | None) -> Catalog:
    what = "Template of the catalogues" if language is None else f"Catalogue ({language})"
    return Catalog(locale=language, domain=DOMAIN, project="weight-initialization lesson", version="1",
                   header_comment=f"# {what} of the weight-initialization lesson.\n"
                                  "# Written by scripts/i18n.py; translators edit the msgstr lines only.\n",
                   msgid_bugs_address="weight-init course team", last_translator="weight-init course team",
                   language_team="weight-init course team", creation_date=STAMP, revision_date=STAMP,
                   charset="utf-8", fuzzy=False)


def template() -> Catalog:
    """Every message of the master notebook, public_tests.py and the standalone set-up cell."""
    catalog = _new_catalog(None)
    entries = (notebook_entries(nbformat.read(MASTER, 4), f"source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
               + [e for path in PYTHON_SOURCES for e in python_entries(ROOT / path)] + standalone_entries())
    for entry in entries:
        if entry.msgid in catalog:
            catalog[entry.msgid].locations.append(entry.location)
        else:
            catalog.add(entry.msgid, locations=[entry.location], auto_comments=[entry.note])
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    """The PO text of a catalogue, as every command writes it."""
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, ignore_obsolete=True, include_previous=False)
    return buffer.getvalue()


def _write_catalog(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(po_bytes(catalog))


def load(language: str) -> Catalog:
    with catalogue_path(language).open("rb") as po:
        return read_po(po, locale=language, domain=DOMAIN)


def extract() -> Catalog:
    catalog = template()
    _write_catalog(catalog, TEMPLATE)
    return catalog


def init(language: str) -> Path:
    """A new catalogue for ``language`` with every template entry untranslated."""
    path = catalogue_path(language)
    if path.exists():
        raise SystemExit(f"{path} exists already; `python -m scripts.i18n update` refreshes it")
    catalog = _new_catalog(language)
    catalog.update(template(), update_creation_date=False)
    _write_catalog(catalog, path)
    return path


def update() -> None:
    """Extract the template and merge it into every catalogue (new entries empty, changed ones fuzzy)."""
    new = extract()
    for language in languages():
        catalog = load(language)
        catalog.update(new, update_creation_date=False)
        catalog.revision_date = STAMP
        _write_catalog(catalog, catalogue_path(language))


# --- checking translations ---------------------------------------------------------------------

MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
CODE = re.compile(r"`[^`\n]+`")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")
FIELD = re.compile(r"\{[^{}]*\}")


def _fields(text: str) -> list[str]:
    """The {fields} of a message.  A field that only formats a quoted word ({'first cost':>12}) may
    translate it; any other field is code ({deep['randn × 1'][0]} names a key) and stays as it is."""
    return [re.sub(r"^\{('[^']*'|\"[^\"]*\")", "{''", field) for field in FIELD.findall(text)]


def damage(msgid: str, msgstr: str, markdown: bool, translate: Callable[[str], str] = str) -> list[str]:
    """What a translation changed that it must keep: formulas, code, tags, {placeholders}.

    A `code` span that quotes a message of the catalogue (`All tests passed.`) must quote its translation.
    """
    def code(text: str) -> list[str]:
        return CODE.findall(MATH.sub("", text))

    def code_spans(text: str) -> list[str]:  # the msgid's, as the translation must quote them
        return code(text) if text is msgstr else [f"`{translate(c[1:-1])}`" for c in code(text)]

    kinds: list[tuple[str, Callable[[str], list[str]]]] = [
        ("formula", MATH.findall), ("code", code_spans), ("HTML tag", TAG.findall)]
    if not markdown:
        kinds.append(("{field}", _fields))
    problems = []
    for label, find in kinds:
        lost = Counter(find(msgid)) - Counter(find(msgstr))
        added = Counter(find(msgstr)) - Counter(find(msgid))
        if lost or added:
            problems.append(f"{label} changed: missing {sorted(lost)}, added {sorted(added)}")
    return problems


def problems(language: str, master: Catalog | None = None) -> list[str]:
    """Every entry of the template that the catalogue misses, leaves empty or fuzzy, or damages."""
    master = master or template()
    catalog = load(language)
    found = []
    for message in master:
        if not message.id:
            continue
        ours = catalog.get(message.id)
        assert isinstance(message.id, str)  # the course has no plural messages
        short = message.id[:70].replace("\n", " ")
        if ours is None:
            found.append(f"{language}: missing: {short!r}")
        elif not ours.string:
            found.append(f"{language}: untranslated: {short!r}")
        elif ours.fuzzy:
            found.append(f"{language}: fuzzy: {short!r}")
        else:
            markdown = any(c.endswith("markdown, keep $math$, `code` and tags") for c in message.auto_comments)
            found += [f"{language}: {p}: {short!r}"
                      for p in damage(message.id, str(ours.string), markdown, translator(catalog))]
    return found


# --- translating -------------------------------------------------------------------------------

def translator(catalog: Catalog | None) -> Callable[[str], str]:
    """msgid -> msgstr; English where the catalogue has no usable translation."""
    def translate(msgid: str) -> str:
        if catalog is None:
            return msgid
        message = catalog.get(msgid)
        return str(message.string) if message is not None and message.string and not message.fuzzy else msgid
    return translate


def translate_code(source: str, graded: bool, translate: Callable[[str], str]) -> str:
    for span in reversed(code_spans(source, graded)):
        source = source[:span.start] + translate(source[span.start:span.end]) + source[span.end:]
    return source


def translate_notebook(nb: nbformat.NotebookNode, translate: Callable[[str], str],
                       language: str) -> nbformat.NotebookNode:
    """The master with every entry translated; structure, metadata and code otherwise unchanged."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            cell.source = translate(cell.source)
        elif cell.cell_type == "code":
            translated = translate_code(cell.source, _is_graded(cell), translate)
            try:
                ast.parse(_blank_magics(translated))
            except SyntaxError as error:
                raise SystemExit(f"{language}: a translation breaks the code of a cell ({error}):\n{translated}") from None
            cell.source = translated
            cell.outputs, cell.execution_count = [], None
    out.metadata["lesson_language"] = language
    return out


def compiled(language: str) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, load(language), use_fuzzy=False)
    return buffer.getvalue()


def helper_files(language: str | None) -> dict[str, bytes]:
    """What an assignment folder holds besides its notebook: helpers, every .mo, its default language."""
    files = {name: (ROOT / name).read_bytes() for name in HELPERS}
    files.update({f"locale/{lang}/LC_MESSAGES/{DOMAIN}.mo": compiled(lang) for lang in languages()})
    if language is not None:
        files["locale/LANGUAGE"] = f"{language}\n".encode()
    return files


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def build() -> list[str]:
    """source/initialization-<language>/ for every catalogue; the .mo files into the master's folder."""
    master = nbformat.read(MASTER, 4)
    _write_files(MASTER.parent, {k: v for k, v in helper_files(None).items() if k.startswith("locale/")})
    built = []
    for language in languages():
        name = assignment_of(language)
        folder = ROOT / "source" / name
        if folder.exists():
            shutil.rmtree(folder)  # nothing in it is edited by hand
        folder.mkdir(parents=True)
        _write_files(folder, helper_files(language))
        nbformat.write(translate_notebook(master, translator(load(language)), language), folder / f"{name}.ipynb")
        built.append(name)
    return built


# --- standalone notebooks ----------------------------------------------------------------------

# The first cell of a standalone notebook; ARCHIVE and SHA256 are filled in by the build.  Its comments
# and printed words are catalogue entries like the master's.
SETUP_CELL = '''# Standalone notebook: this cell puts the course files (helpers, data set, messages) next to it.
# Run it first. It writes only the files that are missing, so it is harmless to run again.
import base64, hashlib, io, pathlib, zipfile

ARCHIVE = "{archive}"
SHA256 = "{sha256}"

data = base64.b64decode(ARCHIVE)
assert hashlib.sha256(data).hexdigest() == SHA256, "The embedded files are damaged: download the notebook again."
with zipfile.ZipFile(io.BytesIO(data)) as archive:
    missing = [name for name in archive.namelist() if not pathlib.Path(name).exists()]
    for name in missing:
        pathlib.Path(name).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(name).write_bytes(archive.read(name))
print(f"Course files written: {len(missing)} of {len(archive.namelist())}")
'''


# Appended to the set-up cell of languages whose figures need CJK glyphs.  init_utils draws with Noto
# Sans CJK SC when matplotlib can find it (Debian's fonts-noto-cjk) or the mplfonts wheel is installed;
# on Colab or a bare Jupyter neither is, so the cell installs the wheel (pip, about 85 MB) once.
CJK_LANGUAGES = ("zh_CN",)
CJK_SETUP = '''
# Chinese figure labels need a font with Chinese characters: install mplfonts (Noto Sans CJK SC) if none is found.
import importlib, subprocess, sys
import init_utils
if not init_utils.cjk_font_available():
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mplfonts"], check=False)
    importlib.invalidate_caches()
    print(f"Chinese font for the figures: {init_utils.cjk_font_available()}")
'''


def _archive(files: dict[str, bytes]) -> bytes:
    """A zip with fixed timestamps, so the same files always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def standalone_notebook(language: str | None) -> nbformat.NotebookNode:
    """The release notebook of ``language`` with the set-up cell in front."""
    name = assignment_of(language)
    release = nbformat.read(ROOT / "release" / name / f"{name}.ipynb", 4)
    data = _archive(helper_files(language))
    translate = translator(load(language) if language else None)
    setup = SETUP_CELL + (CJK_SETUP if language in CJK_LANGUAGES else "")
    source = translate_code(setup, False, translate).replace(
        "{archive}", base64.b64encode(data).decode()).replace("{sha256}", hashlib.sha256(data).hexdigest())
    cell = nbformat.v4.new_code_cell(source, metadata={"standalone_setup": True})
    cell.id = "standalone-setup"  # a fixed id: the same inputs give the same notebook
    release.cells.insert(0, cell)
    return release


def standalone_path(language: str | None) -> Path:
    return STANDALONE / f"{assignment_of(language)}.ipynb"


def write_standalone() -> list[Path]:
    STANDALONE.mkdir(exist_ok=True)
    written = []
    for language in [None, *languages()]:
        nb = standalone_notebook(language)
        standalone_path(language).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(standalone_path(language))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("extract", "update", "build", "standalone", "check", "assignments"):
        commands.add_parser(command)
    commands.add_parser("init").add_argument("language", help="e.g. de, es, pt_BR")
    args = parser.parse_args(argv)
    if args.command == "extract":
        print(f"{TEMPLATE.relative_to(ROOT)}: {len(extract()) - 1} messages")
    elif args.command == "init":
        print(f"{init(args.language).relative_to(ROOT)}: translate its entries, then `make release`")
    elif args.command == "update":
        update()
        print(f"{TEMPLATE.relative_to(ROOT)} and {len(languages())} catalogue(s) updated")
    elif args.command == "build":
        print("built", ", ".join(f"source/{name}/" for name in build()))
    elif args.command == "assignments":  # for the Makefile: the translated assignments' names
        print(" ".join(assignment_of(language) for language in languages()))
    elif args.command == "standalone":
        print("wrote", ", ".join(str(p.relative_to(ROOT)) for p in write_standalone()))
    elif args.command == "check":
        master = template()
        found = [p for language in languages() for p in problems(language, master)]
        print("\n".join(found) or f"{len(languages())} catalogue(s) complete")
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
