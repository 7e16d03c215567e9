"""The package's stages build on each other in one direction: a lower stage never imports a
higher one (README, Code map), so each can be used and tested without those above it."""
from __future__ import annotations

import ast
from pathlib import Path

import rlkd_lite

PACKAGE = Path(rlkd_lite.__file__).parent
STAGES = ("data", "structure", "models", "train", "eval", "cli")

# Older than this check, and left for a later move (of the step format into data/, of the
# adapter switching and decode graphs that the GSRM needs below models/): data/ reads and writes
# structure/'s step format (teacher traces also use its chat batching), and structure/llm.py
# runs the GSRM on the student's model.
KNOWN_UPWARD = {("data/problems.py", "structure"), ("data/synthetic.py", "structure"),
                ("data/teacher.py", "structure"), ("structure/llm.py", "models")}


def _imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):  # lazy imports inside functions count too
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def test_no_stage_imports_a_higher_stage():
    upward = []
    for stage in STAGES:
        for source in sorted((PACKAGE / stage).rglob("*.py")):
            for module in _imported_modules(ast.parse(source.read_text(encoding="utf-8"))):
                parts = module.split(".")
                if parts[0] != "rlkd_lite" or len(parts) < 2 or parts[1] not in STAGES:
                    continue
                where = source.relative_to(PACKAGE).as_posix()
                if (STAGES.index(parts[1]) > STAGES.index(stage)
                        and (where, parts[1]) not in KNOWN_UPWARD):
                    upward.append(f"{where} imports {module}")
    assert upward == []
