"""A scoring pass beside a busy process: the OpenMP wait policy of the CPU rule, measured.

Runs the same CPU pass (the semeval world's target model: greedy generation of its forget
prompts and the token log-probs of its MIA documents, through the engines the suite uses) in
a fresh process, four ways: quiet or beside one process that keeps a core busy, with
``OMP_WAIT_POLICY`` unset (libgomp spins while waiting) or ``PASSIVE`` (what a run sets when it
starts on a busy machine, see ``pytest_unlearn.workers.choose_wait_policy``). Prints each wall
time, the load average, and the busy/quiet ratio of each policy: the rule keeps that ratio
small (issue 28's target: at most 2.5x); the quiet PASSIVE/unset ratio is what it costs on a quiet machine.

    python benchmarks/busy_machine.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PASS = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
import torch
from fixtures.worlds import models
from pytest_unlearn.engines.causal_lm import generate_greedy, token_statistics
from pytest_unlearn.loading import load_causal_lm

path = models("semeval")["target"]
model, tokenizer, device = load_causal_lm(path, device="cpu", dtype="float32", allow_pickle=False)
data = {repo!r} + "/suites/semeval/data"
prompts = [json.loads(l)["input"] for l in open(data + "/forget.jsonl")]
documents = [json.loads(l)["document"] for l in open(data + "/mia/member.jsonl")]
start = time.perf_counter()
for _ in range({repeat}):
    generate_greedy(model, tokenizer, prompts, max_new_tokens=32, batch_size=16, device=device)
    token_statistics(model, tokenizer, documents, batch_size=16, device=device)
print(time.perf_counter() - start)
"""

BUSY = "while True:\n    pass\n"


def run_pass(policy: str | None, busy: bool, repeat: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    spinner = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        out = subprocess.run(
            [sys.executable, "-c", PASS.format(repo=str(REPO), repeat=repeat)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes per measurement")
    args = parser.parse_args()
    print(f"cores usable: {len(os.sched_getaffinity(0))}, load average before: {os.getloadavg()}")
    times = {}
    for policy in (None, "PASSIVE"):
        for busy in (False, True):
            times[(policy, busy)] = run_pass(policy, busy, args.repeat)
            print(f"OMP_WAIT_POLICY={policy or 'unset'} {'busy ' if busy else 'quiet'}: {times[(policy, busy)]:.2f} s")
    for policy in (None, "PASSIVE"):
        ratio = times[(policy, True)] / times[(policy, False)]
        print(f"busy/quiet with OMP_WAIT_POLICY={policy or 'unset'}: {ratio:.2f}x")
    print(f"quiet PASSIVE/unset (the cost on a quiet machine): {times[('PASSIVE', False)] / times[(None, False)]:.2f}x")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
