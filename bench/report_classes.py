"""The report's class figures with many classes: bounded drawing vs drawing everything.

Draws the report's class sections (`report_classes.class_sections`: confusion heatmap,
most-confused pairs, per-class recall and F1 bars) for a synthetic diagonal-heavy
confusion matrix of `--classes` classes, each side in a fresh process, and prints CPU
seconds and peak RSS of both:

- bounded: as the report draws them (counts per cell up to 30 classes, a figure of at
  most 14 inches, bars of the 40 lowest classes);
- everything: the same code with those limits lifted, which is how the report drew
  them before (a count in every cell, every class named, figure and bars growing with
  the classes).

Usage: .venv/bin/python -m bench.report_classes [--classes 200] [--largest 1000]
"""

import argparse
import json
import subprocess
import sys

from bench.common import machine, print_ratios

DRAW = """
import json, sys, time
import numpy as np
from kftransfer.components.core import report_classes
count, everything = int(sys.argv[1]), sys.argv[2] == "everything"
if everything:
    report_classes.ANNOTATED_CLASSES = report_classes.NAMED_CLASSES = 10**9
    report_classes.BAR_CLASSES, report_classes.LARGEST_FIGURE = 10**9, float("inf")
rng = np.random.default_rng(0)
labels = [f"class {i:04d}" for i in range(count)]
matrix = np.diag(rng.integers(5, 20, count)) + (rng.random((count, count)) < 3 / count)
recall = np.diag(matrix) / matrix.sum(axis=1)
per_class = {l: {"recall": r, "f1": r} for l, r in zip(labels, recall)}
models = {"head only": {"per_class": per_class},
          "fine-tuned": {"per_class": per_class, "confusion": matrix.tolist()}}
start = time.process_time()
html = report_classes.class_sections(models, labels)
seconds = time.process_time() - start
peak = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"seconds": seconds, "mib": int(peak) / 1024, "html_mib": len(html) / 2**20}))
"""


def draw(classes: int, side: str) -> dict:
    """CPU seconds, peak RSS (MiB) and HTML size of one drawing, in a fresh process."""
    command = [sys.executable, "-c", DRAW, str(classes), side]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    """Prints both sides at `--classes`, and the bounded side at `--largest`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--largest", type=int, default=1000)
    args = parser.parse_args()
    bounded, everything = (draw(args.classes, side) for side in ("bounded", "everything"))
    largest = draw(args.largest, "bounded")
    for name, result in (
        (f"bounded, {args.classes} classes", bounded),
        (f"everything, {args.classes} classes", everything),
        (f"bounded, {args.largest} classes", largest),
    ):
        print(
            f"{name:<28} {result['seconds']:7.1f} CPU s {result['mib']:8.0f} MiB peak "
            f"{result['html_mib']:6.1f} MiB of HTML"
        )
    print_ratios(
        f"report class sections, {machine()}",
        {
            f"CPU time, everything / bounded ({args.classes} classes)": (
                everything["seconds"] / bounded["seconds"],
                f"{everything['seconds']:.1f} vs {bounded['seconds']:.1f} s",
            ),
            f"peak RSS, everything / bounded ({args.classes} classes)": (
                everything["mib"] / bounded["mib"],
                f"{everything['mib']:.0f} vs {bounded['mib']:.0f} MiB",
            ),
        },
    )


if __name__ == "__main__":
    main()
