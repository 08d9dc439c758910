"""Build aiogram's pydantic schemas when a model is first used, not all of them at import.

`aiogram.types` ends by calling `model_rebuild()` on each of its ~400 models, and its ~160 methods
are built as they are defined. Every model builds its own copy of every schema nested in it, so
importing aiogram costs about 100 MB of RSS and several seconds of CPU (aiogram issue #1513), for a
bot that receives and sends a dozen of those types. aiogram declares its models `defer_build=True`;
this keeps them deferred. It wraps `BaseModel.model_rebuild` for aiogram's own classes only:

- the import-time rebuild with aiogram's types namespace only records that namespace;
- the rebuild pydantic runs when a deferred model is first used is given the recorded namespace,
  so the forward references (kept under `TYPE_CHECKING` in aiogram's modules) resolve.

Each model is then built exactly as pydantic would have built it at import, only later and only if
used. `warm()` builds the models a channel needs at start-up, so no user waits for it and a model
that cannot be built fails the start, not a message. `install()` must run before aiogram is
imported; `bot/channels/__init__.py` runs it, so every channel module gets it. If aiogram was
imported first, nothing is deferred and everything works as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

_AIOGRAM = "aiogram."
_namespace: dict[str, Any] = {}
_original: Any = None
# Parametrised generics such as `Response[Message]` live in pydantic's weak cache: aiogram asks for
# one per API call, and without a strong reference the garbage collector drops it and the next call
# builds it again. Warmed models are kept here for the life of the process.
_warmed: set[type[BaseModel]] = set()


def _is_aiogram(cls: type[BaseModel]) -> bool:
    return cls.__module__.startswith(_AIOGRAM)


def _model_rebuild(
    cls: type[BaseModel],
    *,
    force: bool = False,
    raise_errors: bool = True,
    _parent_namespace_depth: int = 2,
    _types_namespace: Mapping[str, Any] | None = None,
) -> bool | None:
    if _is_aiogram(cls) and not force:
        if _types_namespace is not None and not cls.__pydantic_complete__:
            _namespace.update(_types_namespace)  # aiogram.types' import-time loop: build on first use
            return None
        if _types_namespace is None and _namespace:
            _types_namespace = _namespace
    result: bool | None = _original(
        cls,
        force=force,
        raise_errors=raise_errors,
        _parent_namespace_depth=_parent_namespace_depth + 1,  # this wrapper is one more frame
        _types_namespace=_types_namespace,
    )
    return result


def install() -> None:
    """Defer aiogram's schemas (idempotent; a no-op once aiogram has been imported eagerly)."""
    global _original
    if _original is not None:
        return
    _original = BaseModel.__dict__["model_rebuild"].__func__
    BaseModel.model_rebuild = classmethod(_model_rebuild)  # type: ignore[method-assign,assignment]


def deferred(models: Iterable[type[BaseModel]]) -> list[str]:
    """Names of the given models whose schemas are not built yet."""
    return sorted(m.__name__ for m in models if not m.__pydantic_complete__)


def warm(models: Iterable[type[BaseModel]]) -> None:
    """Build these models' schemas now and keep them; raises if one cannot be built."""
    for model in models:
        if model not in _warmed:
            model.model_rebuild(raise_errors=True)
            _warmed.add(model)
