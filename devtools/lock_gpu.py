"""Writes constraints-gpu.txt: the pins the GPU image adds to the lock (constraints.txt).

The GPU image installs TensorFlow's `and-cuda` extra (TensorFlow with NVIDIA's CUDA and
cuDNN wheels) instead of tensorflow-cpu. This resolves it against every other pin of
constraints.txt (pip's resolver, `--dry-run`: nothing is installed) and writes the
packages it adds, so `pip install -c constraints.txt -c constraints-gpu.txt` is exact.

Usage: .venv/bin/python -m devtools.lock_gpu   (`make lock-gpu`)
"""

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HEADER = """\
# The GPU image's additions to the lock (constraints.txt): TensorFlow with its CUDA and
# cuDNN wheels (the `gpu` extra of pyproject.toml), resolved against every other pin.
# Regenerate with 'make lock-gpu' after 'make lock'.
"""


def normalize(name: str) -> str:
    """A package name as pip compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    """Resolves the GPU extra against the lock and writes constraints-gpu.txt."""
    root = Path(__file__).resolve().parents[1]
    lines = (root / "constraints.txt").read_text().splitlines()
    pins = [line for line in lines if "==" in line and not line.startswith("#")]
    locked = {normalize(line.split("==")[0]) for line in pins}
    gpu = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirement = gpu["optional-dependencies"]["gpu"][0]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp, "base.txt")
        base.write_text(
            "\n".join(p for p in pins if normalize(p.split("==")[0]) != "tensorflow-cpu")
        )
        report = Path(tmp, "report.json")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--report", str(report), "-c", str(base), requirement],
            check=True,
        )  # fmt: skip
        installed = json.loads(report.read_text())["install"]
    added = sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installed
        if normalize(item["metadata"]["name"]) not in locked
    )
    (root / "constraints-gpu.txt").write_text(HEADER + "\n".join(added) + "\n")
    print(f"wrote constraints-gpu.txt: {len(added)} pins")


if __name__ == "__main__":
    main()
