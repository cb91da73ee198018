"""The small languages some parameters speak: head widths, augmentation, unfreeze policies.

Parsed here, with no TensorFlow, so parameters validate instantly (`config.py`) and the
steps that use them (`heads.py`, `fine_tune.py`) read them the same way.
"""


def parse_units(text: str) -> list[int]:
    """Hidden layer widths from `256` or `512,128` ('' = none).

    Raises:
        ValueError: a width is not a positive integer.
    """
    units = [int(u) for u in text.replace(" ", "").split(",") if u]
    if any(u <= 0 for u in units):
        raise ValueError(text)
    return units


AUGMENTATIONS = ("flip", "rotation", "zoom", "translation", "contrast", "erasing")
DEFAULT_AUGMENTATION_FACTOR = 0.1


def parse_augmentation(spec: str) -> list[tuple[str, float]]:
    """`flip,rotation=0.05,...` -> `[("flip", 0.1), ("rotation", 0.05), ...]`.

    Raises:
        ValueError: an unknown name, or a factor that is not a number in (0, 1].
    """
    parsed = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, equals, value = item.partition("=")
        if name not in AUGMENTATIONS:
            raise ValueError(f"{item!r}: use {', '.join(AUGMENTATIONS)}")
        try:
            factor = float(value) if equals else DEFAULT_AUGMENTATION_FACTOR
        except ValueError:
            raise ValueError(f"{item!r}: the factor must be a number, e.g. {name}=0.1") from None
        if not 0 < factor <= 1:
            raise ValueError(f"{item!r}: the factor must be in (0, 1]")
        parsed.append((name, factor))
    return parsed


UNFREEZE_KINDS = ("top_n_layers", "from_layer", "after_layer")


def parse_unfreeze(policy: str) -> tuple[str, str]:
    """`default`, `all`, `top_n_layers=N`, `from_layer=NAME` or `after_layer=NAME` -> (kind, value).

    Raises:
        ValueError: any other text.
    """
    if policy in ("default", "all"):
        return policy, ""
    kind, _, value = policy.partition("=")
    if kind in UNFREEZE_KINDS and value and (kind != "top_n_layers" or value.isdigit()):
        return kind, value
    raise ValueError(policy)
