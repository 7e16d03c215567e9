"""The structure library and the score logic must not pull in the model stack (README, Code map)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import rlkd_lite

EXAMPLES = Path(rlkd_lite.__file__).parent / "examples"
HEAVY = ("torch", "transformers", "unsloth", "unsloth_zoo", "trl", "peft", "accelerate",
         "bitsandbytes", "datasets", "rlkd_lite.structure.llm")

PROBE = f"""
import json, sys
import rlkd_lite.structure
import rlkd_lite.eval.alignment as alignment
import rlkd_lite.eval.render
from rlkd_lite.structure import make_decomposer, make_judge
result = alignment.score_files({str(EXAMPLES / "teacher.jsonl")!r},
                               {str(EXAMPLES / "student.jsonl")!r},
                               make_decomposer("rules"), make_judge("lexical"))
print(json.dumps({{"pairs": result.summary()["pairs"],
                  "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


def test_structure_and_scoring_run_without_the_model_stack():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["pairs"] == 6  # the probe really scored something
    assert found["heavy"] == []
