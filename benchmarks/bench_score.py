"""Throughput of `score` (rules decomposer + lexical judge) and start-up time of the CLI.

    python benchmarks/bench_score.py [--pairs 10000] [--seed 0]

Generates GSM8K-sized synthetic teacher/student pairs (3-5 annotated computation lines per
teacher; students that copy the structure in free form, reword it, get an answer wrong,
take another route, stop early or say nothing), writes them to temporary JSONL files, and
times reading, pairing, decomposing, judging, scoring and writing the JSON report in this one
process. Targets: >= 20,000 pairs/s on one core; `import rlkd_lite.cli` < 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlkd_lite.eval.alignment import score_files, write_report
from rlkd_lite.structure.decomposers import make_decomposer
from rlkd_lite.structure.judges import make_judge

NAMES = ("Ava Ben Carla Dev Elena Farid Gia Hugo Iris Jonas Kemi Liam Mira Noah Omar Pia Quinn "
         "Rosa Sami Tara Umar Vera Wes Xena Yusuf Zoe Arjun Bea Chen Dara Emil Fatima Goran Hana "
         "Ivan Jun Kofi Lena Mateo Nia").split()
ITEMS = ("apples pears stickers marbles cookies pencils books cards shells stamps coins beads "
         "muffins tickets flowers eggs candles buttons bottles plates cupcakes kites crayons "
         "rocks leaves feathers ribbons balloons tiles nails").split()
PLACES = "market school garden fair bakery library shop park stall club".split()

# Computation lines: (text before the computation, operator, text after it). {n} is a name,
# {i} an item, {p} a place.
LINES = [
    ("{n} buys", "*", "{i} at the {p}."),
    ("After the {p}, {n} has", "-", "{i} left."),
    ("Together they collect", "+", "{i} for the {p}."),
    ("Each friend of {n} gets", "/", "{i}."),
    ("In the second week {n} sells", "*", "{i} at the {p}."),
    ("So the {p} receives", "+", "{i} in total."),
    ("That means {n} still needs", "-", "more {i}."),
    ("Every box at the {p} holds", "/", "{i}."),
]
REWORDINGS = {"buys": "purchases", "has": "keeps", "collect": "gather", "gets": "receives",
              "sells": "sold", "needs": "must get", "holds": "contains"}


def _line(rng: random.Random, template, annotated: bool) -> tuple[str, int]:
    before, op, after = template
    a, b = rng.randint(2, 400), rng.randint(2, 40)
    if op == "/":
        a = a * b
    result = {"*": a * b, "+": a + b, "-": a - b, "/": a // b}[op]
    computation = (f"{a}{op}{b} = <<{a}{op}{b}={result}>>{result}" if annotated
                   else f"{a} {op} {b} = {result}")
    return f"{before} {computation} {after}", result


def synthetic_pair(rng: random.Random, index: int) -> tuple[dict, dict]:
    """One teacher trace (annotated, GSM8K style) and one student trace (free form).

    Students cycle through six kinds: same structure, reworded, a wrong result in the middle,
    another route from the start, stopping after two steps, nothing useful.
    """
    names = {"n": rng.choice(NAMES), "i": rng.choice(ITEMS), "p": rng.choice(PLACES)}
    templates = [tuple(part.format(**names) for part in t)
                 for t in rng.sample(LINES, rng.randint(3, 5))]
    teacher_lines, student_lines = [], []
    for template in templates:
        state = rng.getstate()
        line, result = _line(rng, template, annotated=True)
        teacher_lines.append(line)
        rng.setstate(state)  # the student sees the same numbers...
        student_lines.append(_line(rng, template, annotated=False)[0])
    kind = index % 6
    if kind == 1:  # reworded
        student_lines = [" ".join(REWORDINGS.get(w, w) for w in s.split())
                         for s in student_lines]
    elif kind == 2:  # a wrong result in the middle
        k = len(student_lines) // 2
        student_lines[k] = student_lines[k].replace(" = ", " = 1", 1)
    elif kind == 3:  # another route from the start
        student_lines[0] = (f"First {names['n']} works out the cost of one {names['p']} visit: "
                            "7 * 3 = 21.")
    elif kind == 4:  # stops early
        student_lines = student_lines[:2]
    elif kind == 5:  # says nothing useful
        student_lines = ["I am not sure how to solve this."]
    qid = f"q{index}"
    teacher = {"id": qid, "question": f"Synthetic problem {index} about {names['i']}.",
               "reasoning": "\n".join(teacher_lines) + f"\n#### {result}"}
    student = {"id": qid,
               "reasoning": "<think>" + "\n".join(student_lines)
               + f"</think>\nThe answer is {result}."}
    return teacher, student


def bench_score(pairs: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = [synthetic_pair(rng, i) for i in range(pairs)]
    with tempfile.TemporaryDirectory() as tmp:
        teacher, student, report = (Path(tmp, "teacher.jsonl"), Path(tmp, "student.jsonl"),
                                    Path(tmp, "r.json"))
        teacher.write_text("".join(json.dumps(t) + "\n" for t, _ in rows))
        student.write_text("".join(json.dumps(s) + "\n" for _, s in rows))
        mean_chars = statistics.fmean(len(t["reasoning"]) for t, _ in rows)
        start, start_cpu = time.perf_counter(), time.process_time()
        result = score_files(teacher, student, make_decomposer("rules"), make_judge("lexical"))
        write_report(report, result)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    summary = result.summary()
    # CPU time as well: on a shared machine the wall time also counts waiting for a core.
    print(f"score (rules + lexical): {pairs} pairs in {elapsed:.3f} s = "
          f"{pairs / elapsed:,.0f} pairs/s (target >= 20,000); CPU {cpu:.3f} s = "
          f"{pairs / cpu:,.0f} pairs/s")
    print(f"  teacher reasoning {mean_chars:.0f} chars on average; "
          f"mean reward {summary['mean']:.3f}, full match {summary['full_match']:.1%}")


def bench_startup(repeats: int = 5) -> None:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import rlkd_lite.cli"], check=True)
        times.append(time.perf_counter() - start)
    print(f"python -c 'import rlkd_lite.cli': best {min(times):.3f} s, median "
          f"{statistics.median(times):.3f} s of {repeats} (target < 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bench_score(args.pairs, args.seed)
    bench_startup()


if __name__ == "__main__":
    main()
