"""The training recipe: learning-rate schedules, label smoothing, layer-wise rate decay, EMA.

Both training stages build their optimizer here, so a schedule means the same thing for the
head and for fine-tuning (their loss, label smoothing included, is
`classifier.classifier_loss`):

- `cosine`: the learning rate climbs linearly from 0 over the warmup epochs, then follows
  a half cosine down to 0 at the last planned epoch (SGDR / timm / Model Maker style);
  `constant` keeps it flat.
- label smoothing: the targets are `(1 - s)` on the given class and `s / classes` on every
  class (Szegedy et al. 2016); the probabilities the model outputs stay probabilities, and
  evaluation recalibrates them (temperature scaling) anyway.
- layer-wise learning-rate decay: each trainable backbone layer learns at
  `decay ** depth` of the rate, depth counted from the top (the head learns at the full
  rate), as timm's `--layer-decay` and fastai's discriminative rates do.
- EMA: the optimizer keeps an exponential moving average of the weights (Polyak
  averaging); validation, checkpoints and the kept model use the averaged weights.
"""

import math

import keras
from keras import ops

OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
}


def learning_rate(
    base: float, schedule: str, epochs: int, steps: int, warmup_epochs: float
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`base`, or linear warmup to `base` then cosine decay to 0 over `epochs` (per step).

    Args:
        base: the peak learning rate.
        schedule: `constant` or `cosine`.
        epochs: the planned epochs (the cosine reaches 0 at their end).
        steps: optimizer steps per epoch.
        warmup_epochs: epochs of linear warmup (may be fractional; 0 for none).
    """
    if schedule == "constant":
        return base
    total = max(epochs * steps, 1)
    warmup = min(int(round(warmup_epochs * steps)), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else base,
        decay_steps=total - warmup,
        warmup_target=base if warmup else None,
        warmup_steps=warmup,
    )


def steps_per_epoch(rows: int, batch_size: int) -> int:
    """Optimizer steps in an epoch of `rows` examples (the last batch may be short)."""
    return max(math.ceil(rows / batch_size), 1)


class _LayerScaled:
    """Optimizer mixin: each variable's step is the rate times its own scale (default 1)."""

    scale_by_path: dict[str, float] = {}

    def build(self, variables):
        """Builds the optimizer and looks up each variable's scale by its path."""
        super().build(variables)
        self._scales = [self.scale_by_path.get(v.path, 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        """The base update with the variable's scaled learning rate."""
        scale = self._scales[self._get_variable_index(variable)]
        return super().update_step(gradient, variable, ops.multiply(learning_rate, scale))


def make_optimizer(
    name: str,
    rate,
    momentum: float = 0.9,
    ema_momentum: float = 0.0,
    scale_by_path: dict[str, float] | None = None,
) -> keras.optimizers.Optimizer:
    """A Keras optimizer by name (`sgd` uses `momentum`).

    Args:
        name: adam, sgd, rmsprop or adamw.
        rate: a learning rate or schedule (`learning_rate`).
        momentum: SGD's momentum.
        ema_momentum: keep an exponential moving average of the weights with this momentum
            per step (0 for none); see `ema_callbacks`.
        scale_by_path: learning-rate multipliers by variable path (`layer_decay_scales`);
            variables not named learn at the full rate.
    """
    kwargs = {"momentum": momentum} if name == "sgd" else {}
    if ema_momentum:
        kwargs.update(use_ema=True, ema_momentum=ema_momentum)
    cls = OPTIMIZER_CLASSES[name]
    if scale_by_path:
        cls = type(f"LayerScaled{cls.__name__}", (_LayerScaled, cls), {})
        cls.scale_by_path = dict(scale_by_path)
    return cls(rate, **kwargs)


def layer_decay_scales(layers: list[keras.layers.Layer], decay: float) -> dict[str, float]:
    """`decay ** depth` per variable of the given trainable layers, listed bottom to top.

    The top layer with weights gets `decay`, the one below `decay ** 2`, and so on; an
    empty mapping for `decay == 1` (every layer at the full rate).
    """
    if decay == 1.0:
        return {}
    with_weights = [layer for layer in layers if layer.trainable_weights]
    scales = {}
    for depth, layer in enumerate(reversed(with_weights), start=1):
        for variable in layer.trainable_weights:
            scales[variable.path] = decay**depth
    return scales


class EmaWeights(keras.callbacks.SwapEMAWeights):
    """Validation and epoch-end callbacks (checkpoints) see the EMA weights.

    Put it before the checkpointing callback. A checkpoint therefore holds the averaged
    weights in the model and the raw ones in the optimizer's average slots; after resuming
    from one, `resumed()` says so, and the next epoch starts by swapping them back.
    """

    def __init__(self):
        super().__init__(swap_on_epoch=True)

    def resumed(self) -> None:
        """Declares that the model holds restored EMA weights (see the class docstring)."""
        self._ema_weights_in_model = True


def ema_callbacks(model: keras.Model, initial_epoch: int) -> list[keras.callbacks.Callback]:
    """`[EmaWeights]` when the model's optimizer averages its weights, else none."""
    if not getattr(model.optimizer, "use_ema", False):
        return []
    callback = EmaWeights()
    if initial_epoch:
        callback.resumed()
    return [callback]
