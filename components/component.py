"""The decorator every kftransfer step uses: one image, no runtime installs, shared parameters.

A step declares its artifacts and locations; its hyper-parameters come from the config
dataclasses (`core/config.py`). KFP runs a lightweight component by shipping the
function's *source text* into the container, so the step's parameters must be in that
text: the decorator writes the function anew with every field of its config classes
appended to the signature (with the field's default) and to the docstring's `Args:`
(with the field's help, which KFP turns into the parameter's description in the
compiled spec and the UI). The body builds its config with `XConfig.from_params(locals())`.
The body is wrapped so that a `UserError` ends the step with one `error:` line and exit
status 2 (no traceback in the pod's log), and a step whose runner dies stops too
(`signals.stop_when_orphaned`). The generated source is registered with
`linecache`, as `attrs` does for the methods it writes, so `inspect.getsource` (which KFP
calls) finds it.
"""

import ast
import dataclasses
import inspect
import linecache
import textwrap
from collections.abc import Callable

from kfp import dsl
from kfp.dsl.python_component import PythonComponent

from kftransfer.components import __version__
from kftransfer.components.core.config import field_help

IMAGE_REPOSITORY = "ghcr.io/kftransfer/kftransfer"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
GPU_SUFFIX = "-gpu"
INDENT = " " * 4


def kftransfer_component(*configs: type) -> Callable[[Callable], PythonComponent]:
    """Declares a KFP component that runs in the kftransfer image with the configs' fields.

    The project is installed in the image (and in the local `.venv` for `kfp.local`), so
    nothing is pip-installed at run time.

    Args:
        *configs: parameter dataclasses whose fields become the step's last parameters.
    """

    def decorate(func: Callable) -> PythonComponent:
        return dsl.component(
            with_config_parameters(func, configs),
            base_image=DEFAULT_IMAGE,
            install_kfp_package=False,
        )

    return decorate


def with_config_parameters(func: Callable, configs: tuple[type, ...]) -> Callable:
    """`func` rewritten with the configs' fields as parameters, every parameter documented.

    A parameter the function already declares keeps its declaration; one it does not
    document gets its field's help (so locations such as `cache_uri` are described once,
    in `core/config.py`, too).
    """
    source = textwrap.dedent(inspect.getsource(func))
    tree = ast.parse(source).body[0]
    declared = [arg.arg for arg in tree.args.args]
    added = [
        f
        for config_cls in configs
        for f in dataclasses.fields(config_cls)
        if f.name not in declared
    ]
    added = list({f.name: f for f in added}.values())  # `seed` may be in several configs
    parameters = [ast.get_source_segment(source, arg) for arg in tree.args.args]
    parameters = _with_defaults(source, tree, parameters)
    parameters += [f"{f.name}: {f.type.__name__} = {f.default!r}" for f in added]
    helps = {f.name: f.metadata.get("help", "") for c in configs for f in dataclasses.fields(c)}
    names = [*declared, *(f.name for f in added)]
    helps = {name: helps.get(name) or field_help(name) for name in names}
    docstring = _documented(ast.get_docstring(tree) or "", helps)
    statements = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    body = source.splitlines()[statements[0].lineno - 1 :] if statements else [INDENT + "pass"]
    if any('"""' in line or "'''" in line for line in body):
        raise ValueError(f"{func.__name__}: a step's body may not hold triple-quoted strings")
    returns = f" -> {ast.get_source_segment(source, tree.returns)}" if tree.returns else ""
    text = "\n".join(
        [
            f"def {func.__name__}(",
            *(f"{INDENT}{parameter}," for parameter in parameters),
            f"){returns}:",
            textwrap.indent(f'"""{docstring}\n"""', INDENT),
            f"{INDENT}from kftransfer.components.core.signals import stop_when_orphaned",
            "",
            f"{INDENT}stop_when_orphaned()  # no step runs on after its runner died",
            f"{INDENT}del stop_when_orphaned  # the body's locals() start with its parameters",
            f"{INDENT}try:",
            *(textwrap.indent(line, INDENT) for line in body),
            f"{INDENT}except Exception as error:  # a UserError: one line, exit status 2",
            f"{INDENT * 2}from kftransfer.components.core.errors import exit_on_user_error",
            "",
            f"{INDENT * 2}exit_on_user_error(error)",
            f"{INDENT * 2}raise",
        ]
    )
    return _define(func, text + "\n")


def _with_defaults(source: str, tree: ast.FunctionDef, parameters: list[str]) -> list[str]:
    defaults = tree.args.defaults
    offset = len(parameters) - len(defaults)
    return [
        f"{text} = {ast.get_source_segment(source, defaults[i - offset])}" if i >= offset else text
        for i, text in enumerate(parameters)
    ]


def _documented(docstring: str, helps: dict[str, str]) -> str:
    """`docstring` with an `Args:` line (from `helps`) for each undocumented parameter."""
    lines = docstring.splitlines()
    if "Args:" not in lines:
        at = next((i for i, line in enumerate(lines) if line in ("Returns:", "Raises:")), None)
        at = len(lines) if at is None else at
        lines[at:at] = ["Args:", ""] if at < len(lines) else ["", "Args:"]
    start = lines.index("Args:") + 1
    end = start
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    documented = {
        line.strip().split(":")[0]
        for line in lines[start:end]
        if line.startswith(INDENT) and not line.startswith(2 * INDENT)
    }
    missing = [
        f"{INDENT}{name}: {text}" for name, text in helps.items() if name not in documented and text
    ]
    lines[end:end] = missing
    return "\n".join(lines)


def _define(func: Callable, text: str) -> Callable:
    """Compiles `text` in `func`'s module and registers it so `inspect.getsource` finds it."""
    filename = f"<kftransfer component {func.__module__}.{func.__name__}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace: dict = {}
    exec(compile(text, filename, "exec"), func.__globals__, namespace)  # noqa: S102
    generated = namespace[func.__name__]
    generated.__module__ = func.__module__
    generated.__qualname__ = func.__qualname__
    return generated
