"""The CEL runtime: the Rust core of ``common-expression-language``, behind three small functions.

The package's ``cel/__init__.py`` also imports its command-line tool (typer, rich, prompt_toolkit), which
costs about 150 ms of cold start and brings nothing to a Lambda function. We load only the compiled
extension module ``cel.cel`` from the installed package and fall back to a plain ``import cel`` if the
layout ever changes (``benchmarks/cel_packages.py`` measures both).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

# The Rust parser recurses once per operator: an expression of ~20k terms overflows the native stack
# and kills the process. Rule expressions are a few hundred characters; 4 KiB leaves a wide margin.
MAX_EXPRESSION_CHARS = 4096


class CelCompileError(ValueError):
    """The expression is not valid CEL (or is too long to compile safely)."""


class CelEvaluationError(RuntimeError):
    """Evaluating a compiled expression failed: missing key, no such overload, overflow, a panic…"""


def _load_extension() -> ModuleType | None:
    loaded = sys.modules.get("cel.cel")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("cel")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"cel{suffix}"
            if not path.is_file():
                continue
            loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(path))
            extension_spec = importlib.util.spec_from_file_location("cel.cel", path, loader=loader)
            if extension_spec is None:
                return None
            module = importlib.util.module_from_spec(extension_spec)
            loader.exec_module(module)
            # Registered so that a later ``import cel`` reuses it: a PyO3 module initialises only once.
            sys.modules["cel.cel"] = module
            return module
    return None


@cache
def core() -> Any:
    """The module that provides ``compile`` and ``Context`` (loaded on first use, then cached)."""
    try:
        module = _load_extension()
    except ImportError:
        module = None
    if module is None or not hasattr(module, "compile") or not hasattr(module, "Context"):
        import cel

        return cel
    return module


def compile_expression(text: str) -> Any:
    """Parse ``text`` into a reusable program.

    Raises:
        CelCompileError: a syntax error, a reserved word, or an expression longer than MAX_EXPRESSION_CHARS.
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CelCompileError(f"expression is {len(text)} characters long, the limit is {MAX_EXPRESSION_CHARS}")
    try:
        return core().compile(text)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # PyO3 panics derive from BaseException
        raise CelCompileError(_shorten(str(error).strip())) from error


def context(variables: dict[str, Any]) -> Any:
    """Convert the variables to CEL values once, to evaluate many programs against them.

    Raises:
        CelEvaluationError: a value CEL cannot represent (an integer beyond 64 bits, an unsupported type).
    """
    try:
        return core().Context(variables)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        raise CelEvaluationError(f"{type(error).__name__}: {_first_lines(str(error))}") from error


def evaluate(program: Any, activation: Any) -> object:
    """Run ``program`` against a ``context()``.

    Raises:
        CelEvaluationError: anything that went wrong inside the evaluation.
    """
    try:
        result: object = program.execute(activation)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        raise CelEvaluationError(f"{type(error).__name__}: {_first_lines(str(error))}") from error
    return result


def _first_lines(message: str) -> str:
    return _shorten(" ".join(line.strip() for line in message.splitlines()[:3] if line.strip()))


def _shorten(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
