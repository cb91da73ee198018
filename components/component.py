"""The decorator every kftransfer step uses: one image, no runtime installs, shared defaults."""

import dataclasses
import inspect
from collections.abc import Callable

from kfp import dsl
from kfp.dsl.python_component import PythonComponent

from kftransfer.components import __version__

IMAGE_REPOSITORY = "ghcr.io/kftransfer/kftransfer"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"


def kftransfer_component(*configs: type) -> Callable:
    """Declares a KFP component that runs in the kftransfer image.

    The project is installed in the image (and in the local `.venv` for `kfp.local`), so
    nothing is pip-installed at run time. Parameters named like a field of one of the
    `configs` dataclasses take that field's default: the component's source declares them
    without defaults (KFP runs the function's source text, where the dataclass is not in
    scope), and the defaults are attached to its signature here, so the dataclasses stay
    the one source of truth. Such parameters must come last in the signature.

    Args:
        *configs: hyper-parameter dataclasses whose defaults the component shares.
    """

    def decorate(func: Callable) -> PythonComponent:
        defaults = {f.name: f.default for cls in configs for f in dataclasses.fields(cls)}
        signature = inspect.signature(func)
        parameters = [
            param.replace(default=defaults[name]) if name in defaults else param
            for name, param in signature.parameters.items()
        ]
        func.__signature__ = signature.replace(parameters=parameters)
        return dsl.component(func, base_image=DEFAULT_IMAGE, install_kfp_package=False)

    return decorate
