"""Modules stay under 400 lines and functions under 60 (ARCHITECTURE, convention 11), every one
of them: no exceptions."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "autograph"
MODULE_LINES = 400
FUNCTION_LINES = 60


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = path.relative_to(SOURCE).as_posix()
        text = path.read_text()
        modules[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                key = f"{name}:{node.name}"
                functions[key] = max(functions.get(key, 0), node.end_lineno - node.lineno + 1)
    return modules, functions


def test_no_module_is_over_the_ceiling() -> None:
    modules, _ = _sizes()
    over = {name: lines for name, lines in modules.items() if lines > MODULE_LINES}
    assert over == {}, f"split these modules (ceiling {MODULE_LINES} lines): {over}"


def test_no_function_is_over_the_ceiling() -> None:
    _, functions = _sizes()
    over = {name: lines for name, lines in functions.items() if lines > FUNCTION_LINES}
    assert over == {}, f"split these functions (ceiling {FUNCTION_LINES} lines): {over}"

