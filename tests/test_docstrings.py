"""Docstrings: the public entry points say what they take, what they give and show it; every
example in the package runs (doctest, on the tiny config and the tiny trained run); the share of
public definitions with a docstring does not fall.

    python tests/test_docstrings.py      # prints the count, e.g. "docstrings: 302 of 540 (55.9 %)"

A public definition is a module-level function or class, or a method of any class, whose name
does not start with ``_`` (nested functions do not count).
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lavis"
FLOOR = 0.95  # raise it as docstrings are added; it never goes down (100 % at the time of writing)

# (module, qualified name): the entry points a user calls first.
ENTRY_POINTS = [
    ("lavis.inference.predictor", "load_model"),
    ("lavis.inference.predictor", "Predictor.predict"),
    ("lavis.models.blip2_mr.model", "Blip2MR.forward"),
    ("lavis.models.blip2_mr.model", "Blip2MR.generate"),
    ("lavis.models.blip2_mr.model", "Blip2MR.predict"),
    ("lavis.datasets.builders", "MomentRetrievalBuilder.build_datasets"),
    ("lavis.train", "main"),
    ("lavis.evaluate", "main"),
    ("lavis.export", "main"),
    ("lavis.inspect_model", "main"),
    ("lavis.common.registry", "Registry.register"),
    ("lavis.datasets.video_io", "read_frames"),
    ("lavis.datasets.video_io", "open_video"),
    ("lavis.models.fusion.base", "build_fusion"),
]


def public_definitions(root: Path = PACKAGE) -> list[tuple[str, bool]]:
    """``(path:qualified name, has a docstring)`` of every public definition under ``root``."""
    found = []

    def visit(node: ast.AST, path: Path, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if not child.name.startswith("_"):
                    found.append((f"{path}:{prefix}{child.name}", ast.get_docstring(child) is not None))
                if isinstance(child, ast.ClassDef):
                    visit(child, path, f"{prefix}{child.name}.")

    for path in sorted(root.rglob("*.py")):
        visit(ast.parse(path.read_text()), path.relative_to(root.parent), "")
    return found


def test_the_share_of_documented_public_definitions_does_not_fall():
    found = public_definitions()
    documented = sum(has_doc for _, has_doc in found)
    assert len(found) > 500 and documented / len(found) >= FLOOR, f"{documented} of {len(found)}"


def _lookup(module: str, qualname: str):
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize(("module", "qualname"), ENTRY_POINTS)
def test_entry_points_document_arguments_returns_and_an_example(module, qualname):
    obj = _lookup(module, qualname)
    doc = inspect.getdoc(obj) or ""
    takes_arguments = [p for p in inspect.signature(obj).parameters if p != "self"]
    sections = (["Args:"] if takes_arguments else []) + ["Returns:", "Example"]
    missing = [section for section in sections if section not in doc]
    assert not missing, f"{module}.{qualname}: no {missing} in its docstring"


def _modules_with_examples() -> list[str]:
    return sorted(
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
        if ">>>" in path.read_text()
    )


def test_the_documented_entry_points_have_running_examples():
    assert {module for module, _ in ENTRY_POINTS} <= set(_modules_with_examples())


@pytest.mark.parametrize("module_name", _modules_with_examples())
def test_every_example_runs(module_name, tiny_run, tmp_path):
    """A module's examples run in source order with one namespace, so a method's example may use
    what its class's example built; ``run_dir``, ``data``, ``video`` and ``tmp`` are given."""
    module = importlib.import_module(module_name)
    given = {
        "run_dir": tiny_run.run_dir,
        "data": tiny_run.data,
        "video": sorted((tiny_run.data / "videos").glob("*.mp4"))[0],
        "tmp": tmp_path,
    }
    namespace = {**vars(module), **given}
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    tests = sorted((t for t in tests if t.examples), key=lambda t: t.lineno or 0)
    assert tests, f"{module_name} has '>>>' but no example was found"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in tests:
        test.globs = namespace  # shared: later examples see what earlier ones defined
        runner.run(test, out=report.append, clear_globs=False)
    assert runner.tries > 0 and runner.failures == 0, "".join(report)


if __name__ == "__main__":
    found = public_definitions()
    documented = sum(has_doc for _, has_doc in found)
    print(f"docstrings: {documented} of {len(found)} public definitions ({100 * documented / len(found):.1f} %)")
    if "--missing" in sys.argv:
        print("\n".join(name for name, has_doc in found if not has_doc))
