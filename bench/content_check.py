"""The cost of checking each image's content against the split's hash while decoding it.

Extraction and the pixel cache key what they decode by the sha256 the split recorded;
`images.image_dataset(..., sha256s=...)` hashes every file's bytes as it reads them and
drops a file that changed since the split, so that its new content is never kept under
the old content's hash. Ratio: images/s decoding with the check / without it (local
files, decode + resize to `--size`, batches of 32), on 4000x3000 photo-like JPEGs
(`devtools.imagegen.photo`) and on 200x160 JPEGs, best of `--repeats`, interleaved.

Usage: .venv/bin/python -m bench.content_check [--photos 96] [--small 2000] [--repeats 4]
"""

import argparse
import hashlib
import tempfile

from bench.common import machine, print_ratios, timed
from bench.extract import best_of, write_jpegs
from bench.photos import files_under
from devtools.imagegen import write_photos
from kftransfer.components.core.images import image_dataset


def checked_vs_unchecked(data: str, size: int, repeats: int) -> list[float]:
    """Best images/s decoding the files under `data` with and without the hash check."""
    files = files_under(data)
    shas = []
    for path in files:
        with open(path, "rb") as f:
            shas.append(hashlib.sha256(f.read()).hexdigest())

    def rate(sha256s) -> float:
        dataset = image_dataset(files, [0] * len(files), size, 32, sha256s=sha256s)
        seconds, batches = timed(lambda: [b for b in dataset])
        assert sum(len(b[0]) for b in batches) == len(files)  # nothing refused
        return len(files) / seconds

    return best_of(repeats, lambda: rate(shas), lambda: rate(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=96, help="4000x3000 photos")
    parser.add_argument("--small", type=int, default=2000, help="200x160 JPEGs")
    parser.add_argument("--size", type=int, default=224, help="decode-to size")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_photos(f"{tmp}/photos", args.photos)
        write_jpegs(f"{tmp}/small", args.small)
        for name, data in (("4000x3000", f"{tmp}/photos"), ("200x160", f"{tmp}/small")):
            checked, unchecked = checked_vs_unchecked(data, args.size, args.repeats)
            results[f"decode checked / unchecked, {name} JPEGs"] = (
                checked / unchecked, f"{checked:.0f} vs {unchecked:.0f} images/s"
            )  # fmt: skip
    print_ratios(
        (
            f"bench/content_check.py: {args.photos} 4000x3000 photo-like JPEGs and "
            f"{args.small} 200x160, decode to {args.size} px, best of {args.repeats}; "
            f"{machine()}"
        ),
        results,
    )


if __name__ == "__main__":
    main()
