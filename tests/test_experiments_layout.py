"""The layout of ``experiments/``: every script is a thin command line over a package module.

Each ``experiments/*.py`` holds a docstring with its usage, imports its ``main`` from a module of
``rce_jax`` (which is also runnable as ``python -m``), and nothing else: no ``sys.path`` set-up,
no import of another script, no code besides ``if __name__ == "__main__"``. Its ``--help`` exits
0 in a fresh interpreter that finds the package the way an installed one does (``PYTHONPATH``,
not the script's folder), from a folder other than the checkout.
"""

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "experiments").glob("*.py"))
HELP_TIMEOUT_S = 120  # --help imports JAX and the module (about 3 s here); a hang must not block the suite


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_main_guard(node) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _uses_sys_path(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "path" and isinstance(n.value, ast.Name)
               and n.value.id == "sys" for n in ast.walk(tree))


def _main_module(tree: ast.Module) -> str | None:
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == "main" and a.asname is None for a in node.names):
            return node.module
    return None


def test_the_experiments_folder_has_scripts():
    """The glob sees the scripts (a wrong ROOT would make every other test here vacuous)."""
    assert len(SCRIPTS) >= 11, [p.name for p in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_a_thin_command_line_over_a_package_module(script):
    """Docstring with a ``python experiments/<name>.py`` usage line; ``main`` imported from an
    ``rce_jax`` module that exists and defines it; every import from ``rce_jax``; no ``sys.path``;
    no statement besides the docstring, the imports and the ``__main__`` guard."""
    tree = _tree(script)
    doc = ast.get_docstring(tree)
    assert doc and f"python experiments/{script.name}" in doc, f"{script.name}: no usage line in its docstring"
    assert not _uses_sys_path(tree), f"{script.name} touches sys.path"
    module = _main_module(tree)
    assert module is not None and module.startswith("rce_jax."), f"{script.name}: main is not imported from rce_jax"
    for node in tree.body[1:]:
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] == "rce_jax", f"{script.name} imports from {node.module}"
        else:
            assert _is_main_guard(node), f"{script.name}: line {node.lineno} is neither an import nor the guard"
    assert callable(importlib.import_module(module).main)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_package_module_behind_a_script_runs_as_python_m(script):
    """The module that holds a script's ``main`` ends with its own ``__main__`` guard (so that
    ``python -m rce_jax.<...>`` runs it) and touches no ``sys.path`` either."""
    module = _main_module(_tree(script))
    spec = importlib.util.find_spec(module)
    tree = _tree(Path(spec.origin))
    assert _is_main_guard(tree.body[-1]), f"{module} has no __main__ guard"
    assert not _uses_sys_path(tree), f"{module} touches sys.path"
    assert f"python -m {module}" in ast.get_docstring(tree), f"{module}: no python -m usage line"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_help_exits_zero_from_another_folder(script, tmp_path):
    """``python experiments/<name>.py --help`` prints argparse's usage and exits 0 (no torch,
    no data, no GPU needed to read the options)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "kernels")]))
    proc = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=HELP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:500]

