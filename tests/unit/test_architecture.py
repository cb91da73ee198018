"""Boundaries enforced by tests: a kfp-free core, thin steps, benchmarks apart from tests."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE_MODULES = sorted(p.stem for p in (ROOT / "components" / "core").glob("*.py"))
STEP_FILES = sorted(
    p for p in (ROOT / "components").glob("*.py") if p.stem not in ("__init__", "component")
)


def test_every_core_module_imports_without_kfp():
    imports = "; ".join(f"import kftransfer.components.core.{m}" for m in CORE_MODULES)
    check = (
        f"{imports}; import sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'kfp'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("path", STEP_FILES, ids=lambda p: p.stem)
def test_each_step_is_a_thin_wrapper(path):
    tree = ast.parse(path.read_text())
    [func] = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    body = func.body[1:] if ast.get_docstring(func) else func.body
    lines = body[-1].end_lineno - body[0].lineno + 1
    assert lines <= 40, f"{path.stem}'s body is {lines} lines"
    # no ML or I/O in a wrapper: it imports only from the core and calls into it
    for node in ast.walk(func):
        if isinstance(node, ast.ImportFrom):
            assert node.module.startswith("kftransfer.components.core"), node.module
        if isinstance(node, ast.For | ast.While):
            pytest.fail(f"{path.stem} loops: that belongs in the core")


def test_benchmarks_do_not_import_the_tests():
    for path in (ROOT / "bench").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                )
                assert not any(n and n.split(".")[0] == "tests" for n in names), path.name


def test_only_the_layout_module_spells_artifact_file_names():
    names = ['"labels.json"', '"stats.json"', '"manifest.json"', '"model.keras"',
             '"history.json"', '"config.json"', '"evaluation.json"', '"model_card.md"',
             '"latest"', '"spec.json"', '"state.json"']  # fmt: skip
    for path in (ROOT / "components").rglob("*.py"):
        if path.name == "layout.py":
            continue
        text = path.read_text()
        spelled = [name for name in names if name in text]
        assert not spelled, f"{path.relative_to(ROOT)} spells {spelled}: use core/layout.py"


def test_no_step_moves_an_output_artifact():
    """Rule artifact-uri (docs/kfp-backend.md): a step never assigns an artifact's `.uri`."""
    for path in STEP_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                moved = [t for t in targets if isinstance(t, ast.Attribute) and t.attr == "uri"]
                assert not moved, f"{path.stem} assigns an artifact's .uri"


def _text_opens_without_encoding(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open"):
            continue
        modes = [a for a in node.args[1:2] if isinstance(a, ast.Constant)]
        modes += [k.value for k in node.keywords if k.arg == "mode"]
        binary = any("b" in getattr(mode, "value", "") for mode in modes)
        if not binary and not any(k.arg == "encoding" for k in node.keywords):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_text_files_are_read_and_written_as_utf8():
    """Before: the export wrote labels.json and the card in the locale's encoding, so a
    class named 'café' failed the export under a non-UTF-8 locale (and run.log, the
    summary's reads of evaluation.json and label_issues.csv likewise)."""
    sources = sorted([*(ROOT / "components").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")])
    assert [where for path in sources for where in _text_opens_without_encoding(path)] == []
