"""The module maps of the docs are the tree as it is.

Two maps name modules: the README's "Layout" table (one module per stage of the data flow) and
the module map of docs/design.md (section 7, every module of the two packages). A path in either
that does not exist, or a module of ``rce_jax`` / ``rce_kernels`` that the design's map does not
name, is a map that lies; these tests read the Markdown and the tree, nothing else.

Reading rule: in a line (a table row or a line of text), a backticked token with a ``/`` is a path from the repository root
(a folder when it ends with ``/``); a backticked file name without one (``step.py``) lies in the
folder the row named last. Tokens that are not file or folder names (``RankStats``) are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE_SUFFIXES = (".py", ".yaml", ".md")
TICKED = re.compile(r"`([^`\s]+)`")


def _section(path: Path, heading: str) -> list[str]:
    """The lines of the Markdown section whose heading line starts with ``heading``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(heading))
    level = len(heading) - len(heading.lstrip("#"))
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level),
               len(lines))
    return lines[start + 1:end]


def _named_paths(lines: list[str]) -> list[tuple[str, Path]]:
    """``(token, resolved path)`` of every file or folder a line of ``lines`` names."""
    out = []
    for line in lines:
        folder = ROOT
        for token in TICKED.findall(line):
            is_path = token.endswith("/") or token.endswith(FILE_SUFFIXES)
            if not is_path:
                continue
            if "/" in token.rstrip("/"):
                path = ROOT / token
                folder = path if token.endswith("/") else path.parent
            elif token.endswith("/"):
                path = folder = ROOT / token
            else:
                path = folder / token
            out.append((token, path))
    return out


def _missing(named: list[tuple[str, Path]]) -> list[str]:
    return [f"{token} -> {path.relative_to(ROOT)}" for token, path in named
            if not (list(path.parent.glob(path.name)) if "*" in path.name else path.exists())]


def test_readme_layout_names_existing_modules():
    """Every path in the README's Layout table exists."""
    named = _named_paths(_section(ROOT / "README.md", "## Layout"))
    assert len(named) >= 10, "the Layout table names fewer paths than the data flow has stages"
    assert _missing(named) == []


def test_design_module_map_names_existing_modules():
    """Every path in docs/design.md's module map exists."""
    named = _named_paths(_section(ROOT / "docs" / "design.md", "## 7. Module map"))
    assert _missing(named) == []


def test_design_module_map_names_every_module():
    """Every module of the packages rce_jax and rce_kernels is named in the design's module map
    (``__init__.py`` aside), so a newcomer finds any module from the map."""
    named = {p.resolve() for _, p in _named_paths(_section(ROOT / "docs" / "design.md", "## 7. Module map"))}
    modules = [p for pkg in (ROOT / "rce_jax", ROOT / "kernels" / "rce_kernels")
               for p in sorted(pkg.rglob("*.py")) if p.name != "__init__.py"]
    assert len(modules) > 50
    unnamed = [str(p.relative_to(ROOT)) for p in modules if p.resolve() not in named]
    assert unnamed == []


def _anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file (lower case, punctuation dropped,
    spaces to hyphens)."""
    out = set()
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_docs_reference_points_at_a_file_and_heading():
    """Every ``docs/NAME.md`` or ``docs/NAME.md#anchor`` cited in the code, the tests, the
    experiments or the top-level Markdown names a file of docs/ and, with an anchor, one of its
    headings: the design a comment points to is in the repository."""
    cited = re.compile(r"docs/([\w\-]+\.md)(?:#([\w\-]+))?")
    sources = [p for d in ("rce_jax", "kernels", "tests", "experiments") for p in (ROOT / d).rglob("*.py")
               if p.resolve() != Path(__file__).resolve()]
    sources += [ROOT / "README.md", ROOT / "BUILD_NOTES.md"]
    broken = []
    for src in sources:
        for name, anchor in cited.findall(src.read_text(encoding="utf-8")):
            target = ROOT / "docs" / name
            if not target.exists() or (anchor and anchor not in _anchors(target)):
                broken.append(f"{src.relative_to(ROOT)}: docs/{name}{'#' + anchor if anchor else ''}")
    assert broken == []


def test_links_between_docs_resolve():
    """Every relative Markdown link ``[..](NAME.md#anchor)`` inside docs/ names a file of docs/
    and one of its headings."""
    link = re.compile(r"\]\((?!https?:)([\w\-]+\.md)?(?:#([\w\-]+))?\)")
    broken = []
    for src in sorted((ROOT / "docs").glob("*.md")):
        for name, anchor in link.findall(src.read_text(encoding="utf-8")):
            target = ROOT / "docs" / name if name else src
            if not target.exists() or (anchor and anchor not in _anchors(target)):
                broken.append(f"{src.name}: ({name}{'#' + anchor if anchor else ''})")
    assert broken == []


def _resolves(dotted: str) -> bool:
    """Whether ``rce_jax.<dotted>`` (a module, then attributes) exists."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("rce_jax." + ".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_result_fields_name_the_code_that_computes_them():
    """docs/results.md names, for every field of a result file, where it is computed
    (``module.function`` under rce_jax): each such name exists, so README -> docs/results.md ->
    the function is two hops that do not break when code moves."""
    rows = [ln for ln in _section(ROOT / "docs" / "results.md", "## Fields") if ln.startswith("| `")]
    assert len(rows) >= 25
    dotted = re.compile(r"^[a-z_]+(\.[A-Za-z_]\w*)+$")
    names = [tok for row in rows for tok in TICKED.findall(row.split("|")[3]) if dotted.match(tok)]
    assert len(names) >= 25
    assert [n for n in names if not _resolves(n)] == []
