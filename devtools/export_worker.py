"""Exports a model in a process of its own, for tests that kill or race exports.

Usage: python -m devtools.export_worker MODEL_FILE DESTINATION [CARD_TEXT]
(STORAGE_EMULATOR_HOST reaches the GCS emulator, as everywhere.)
"""

import sys

from kftransfer.components.core.export import export_model
from kftransfer.components.core.model_io import load_model


def main() -> None:
    """Exports MODEL_FILE (three classes) as a new version of DESTINATION; prints its URI."""
    model_file, destination, *card = sys.argv[1:]
    labels = ["a", "b", "c"]
    print(export_model(load_model(model_file), labels, destination, card[0] if card else "#", {}))


if __name__ == "__main__":
    main()
