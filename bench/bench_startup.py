"""Start-up time of the command line (``keras-seran --help``, ``--version``, ``import keras_seran``).

    python bench/bench_startup.py                 # 7 runs each, median
    python bench/bench_startup.py --runs 15 --with-keras

Each case runs in a fresh interpreter the way the ``keras-seran`` console script does
(``from keras_seran.cli import main``), with this checkout first on the path. Prints a Markdown
table: median wall time and median CPU time (user + system; on a busy machine the wall time
mostly measures the wait for a core), and what a plain ``python -c pass`` costs for comparison.
Neither ``--help`` nor ``--version`` imports Keras, TensorFlow or JAX; ``--with-keras`` adds
``import keras`` (what every command that runs a network pays once) for scale.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY = "import sys; from keras_seran.cli import main; sys.exit(main())"
CASES = {
    "python -c pass (interpreter alone)": ["-c", "pass"],
    "import keras_seran": ["-c", "import keras_seran"],
    "keras-seran --version": ["-c", ENTRY, "--version"],
    "keras-seran --help": ["-c", ENTRY, "--help"],
    "keras-seran predict --help": ["-c", ENTRY, "predict", "--help"],
    "keras-seran train --help": ["-c", ENTRY, "train", "--help"],
}


def time_once(args: list[str], env: dict) -> tuple[float, float]:
    """(wall, cpu) seconds of one fresh ``python ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    p.add_argument("--runs", type=int, default=7, help="runs per case (default 7)")
    p.add_argument(
        "--with-keras",
        action="store_true",
        help="also time `import keras` (its backend included), for scale",
    )
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    cases = dict(CASES)
    if args.with_keras:
        cases["import keras (not done by the above)"] = ["-c", "import keras"]
    print(
        f"start-up, median of {args.runs} runs ({os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f})\n"
    )
    print("| case | wall (s) | CPU (s) |")
    print("|---|---:|---:|")
    for name, case_args in cases.items():
        time_once(case_args, env)  # warm the file cache
        walls, cpus = zip(*(time_once(case_args, env) for _ in range(args.runs)))
        print(
            f"| {name} | {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
