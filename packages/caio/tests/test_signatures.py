"""Every public callable of the C modules has a text signature that
inspect.signature reads, and its stub names the same parameters."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

C_MODULES = ("linux_uring", "linux_aio", "thread_aio")
#: Dunder methods that are part of the protocol (the context manager).
PUBLIC_DUNDERS = ("__enter__", "__exit__")


def import_c(name: str) -> Any:
    try:
        return importlib.import_module(f"caio.{name}")
    except ImportError as exc:
        pytest.skip(f"caio.{name} cannot be imported here: {exc}")


def public_callables(cls: type) -> dict[str, Any]:
    """The class's own callables that users may call (not inherited)."""
    found = {}
    for attr in vars(cls):
        if attr.startswith("_") and attr not in PUBLIC_DUNDERS:
            continue
        value = getattr(cls, attr)
        if callable(value):  # not the properties (getset descriptors)
            found[attr] = value
    return found


def stub_classes(module: Any) -> dict[str, dict[str, list[str]]]:
    """Class -> method -> parameter names (self/cls left out) from the
    module's stub, following the base classes defined in caio/_cbase.pyi."""
    stub_dir = Path(module.__file__).parent
    trees = {
        path.stem: ast.parse(path.read_text())
        for path in (stub_dir / f"{module.__name__.rsplit('.', 1)[1]}.pyi",
                     stub_dir / "_cbase.pyi")
    }
    classes: dict[str, ast.ClassDef] = {}
    for tree in trees.values():
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, node)
    own = {n.name for n in next(iter(trees.values())).body if isinstance(n, ast.ClassDef)}

    def methods(node: ast.ClassDef) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                result.update(methods(classes[base.id]))
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                if any(isinstance(d, ast.Name) and d.id == "property"
                       for d in item.decorator_list):
                    continue
                args = item.args
                names = [a.arg for a in args.posonlyargs + args.args][1:]
                if args.vararg is not None:
                    names.append("*" + args.vararg.arg)
                names += [a.arg for a in args.kwonlyargs]
                result[item.name] = names
        return result

    return {name: methods(classes[name]) for name in own}


def runtime_names(signature: inspect.Signature) -> list[str]:
    """Parameter names, without the self of a method taken from the class."""
    names = []
    params = list(signature.parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            names.append("*" + param.name)
        else:
            names.append(param.name)
    return names


@pytest.mark.parametrize("name", C_MODULES)
def test_every_public_callable_has_a_signature(name: str) -> None:
    module = import_c(name)
    checked = 0
    for cls in (module.Context, module.Operation):
        for attr, value in public_callables(cls).items():
            signature = inspect.signature(value)  # raises ValueError without one
            assert signature.parameters is not None, (cls, attr)
            checked += 1
    # The constructor of Context, from the type's docstring.
    assert "max_requests" in inspect.signature(module.Context).parameters
    # Context: 4 *_async, cancel_future, submit, cancel, process_events,
    # set_future_factory, close, __enter__, __exit__; Operation: read,
    # write, fsync, fdsync, set_callback, get_value.
    assert checked >= 18


@pytest.mark.parametrize("name", C_MODULES)
def test_stub_parameters_match_the_runtime(name: str) -> None:
    module = import_c(name)
    stubs = stub_classes(module)
    assert {"Context", "Operation"} <= set(stubs)
    for cls_name in ("Context", "Operation"):
        cls = getattr(module, cls_name)
        stub = stubs[cls_name]
        for attr, value in public_callables(cls).items():
            if attr in PUBLIC_DUNDERS:
                continue  # the stub spells out exc_type, exc, tb
            assert attr in stub, f"{name}.{cls_name}.{attr} is missing from the stub"
            runtime = runtime_names(inspect.signature(value))
            assert stub[attr] == runtime, f"{name}.{cls_name}.{attr}"
    constructor = runtime_names(inspect.signature(module.Context))
    assert stubs["Context"]["__new__"] == constructor
