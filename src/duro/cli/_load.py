"""Importing the user's code: modules by dotted name or file path, and MODULE:WORKFLOW."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from duro.cli._common import EXIT_USAGE, CliError
from duro.workflow import Workflow, registered_workflows

__all__ = ["import_target", "load_workflow", "parse_call_args", "workflows_in"]


def _looks_like_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def import_target(target: str) -> ModuleType:
    """Import a module by dotted name (from the current directory) or by ``.py`` path.

    Raises:
        CliError: (exit 2) the module cannot be found or its code raised on import.
    """
    cwd = os.getcwd()
    # A console script starts with its bin/ directory on sys.path, not the current one.
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if _looks_like_path(target):
        path = Path(target)
        if not path.is_file():
            raise CliError(f"cannot import {target!r}: no such file", EXIT_USAGE)
        return _import_file(path.resolve(), target)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise CliError(
                f"cannot import module {target!r}: no module named {exc.name!r} (run duro "
                "from the directory that holds it, or give the path to its .py file)",
                EXIT_USAGE,
            ) from None
        raise _import_failed(target, exc) from None
    except Exception as exc:
        raise _import_failed(target, exc) from None


def _module_name(path: Path) -> tuple[str, Path]:
    """The dotted name Python would give the file, and the folder it is imported from.

    The name matters beyond this process: step names include the module, and a run's
    history must replay under the same names wherever it is resumed.
    """
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts), folder


def _import_file(path: Path, shown: str) -> ModuleType:
    name, root = _module_name(path)
    existing = sys.modules.get(name)
    if existing is not None:
        file = getattr(existing, "__file__", None)
        if file and Path(file).resolve() == path:
            return existing
        raise CliError(
            f"cannot import {shown!r} as module {name!r}: another module of that name is "
            f"already imported ({file or 'built in'}); rename the file", EXIT_USAGE)
    # Its folder goes on sys.path so that the file can import its neighbours.
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        if "." in name:
            module = importlib.import_module(name)
        else:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise CliError(f"cannot import {shown!r}: not a Python source file", EXIT_USAGE)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
    except CliError:
        raise
    except (Exception, SystemExit) as exc:
        raise _import_failed(shown, exc) from None
    file = getattr(module, "__file__", None)
    if not file or Path(file).resolve() != path:
        raise CliError(f"importing {shown!r} as {name!r} found another file: {file}",
                       EXIT_USAGE)
    return module


def _import_failed(target: str, exc: BaseException) -> CliError:
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return CliError(
        f"error while importing {target!r}: {type(exc).__name__}: {exc}", EXIT_USAGE,
        detail=detail,
    )


def workflows_in(module: ModuleType) -> list[Workflow[Any, Any]]:
    """The workflows a module defines or imports, in order of appearance."""
    return [value for value in vars(module).values() if isinstance(value, Workflow)]


def load_workflow(spec: str) -> Workflow[Any, Any]:
    """Resolve ``MODULE:WORKFLOW`` to a workflow.

    ``WORKFLOW`` is an attribute of the module (dotted for nested attributes) or, failing
    that, the registered name of a workflow the module declares.

    Raises:
        CliError: (exit 2) a malformed spec, an unimportable module, a missing
            attribute, or an attribute that is not a ``@duro.workflow``.
    """
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise CliError(
            f"expected MODULE:WORKFLOW (like app:order or path/to/app.py:order), got {spec!r}",
            EXIT_USAGE,
        )
    module = import_target(module_part)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    if obj is None:
        by_name = registered_workflows().get(attr)
        if by_name is not None and by_name.fn.__module__ == module.__name__:
            return by_name
        names = ", ".join(w.__name__ for w in workflows_in(module)) or "none"
        raise CliError(
            f"module {module_part!r} has no attribute {attr!r} (workflows in it: {names})",
            EXIT_USAGE,
        )
    if not isinstance(obj, Workflow):
        raise CliError(
            f"{spec!r} is not a @duro.workflow (its type is {type(obj).__name__})",
            EXIT_USAGE,
        )
    return obj


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_call_args(
    values: list[str], json_args: str | None
) -> tuple[list[Any], dict[str, Any]]:
    """The workflow's arguments: each ARG as JSON if it parses (else as a string), then
    ``--json-args``: a JSON array appends positional arguments, an object gives keywords.

    Raises:
        CliError: (exit 2) ``--json-args`` is not a JSON array or object.
    """
    args = [_value(v) for v in values]
    kwargs: dict[str, Any] = {}
    if json_args is not None:
        try:
            extra = json.loads(json_args)
        except ValueError as exc:
            raise CliError(f"--json-args is not valid JSON: {exc}", EXIT_USAGE) from None
        if isinstance(extra, list):
            args.extend(extra)
        elif isinstance(extra, dict):
            kwargs = extra
        else:
            raise CliError(
                "--json-args must be a JSON array (positional arguments) or object "
                f"(keyword arguments), not {type(extra).__name__}",
                EXIT_USAGE,
            )
    return args, kwargs
