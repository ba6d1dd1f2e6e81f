"""Lazy exports for the API packages: a name's module loads when the name is first used.

Each package of the notebooks' API (``wslab``, ``wslab.core``, ``wslab.servers``, ...) lists
its names and the module that defines each; importing the package imports none of them. So
``import wslab`` stays cheap, ``import wslab.core.handshake`` does not load the chat room,
and ``wslab.brokers`` loads the Redis client only when a lesson asks for ``RedisBroker``.
The same idea as websockets' ``lazy_import`` (PEP 562's module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict[str, Any], exports: dict[str, str]) -> None:
    """Give a package's ``namespace`` (its ``globals()``) the ``__getattr__`` and ``__dir__``
    that load each name of ``exports`` (name: module, relative to the package) on first use.

    A loaded name is stored in the namespace, so the next access is a plain attribute. A name
    spelled like one of the package's modules (``wslab.servers.echo``) cannot be lazy: the
    import system sets the module as that attribute when it loads it. Import it eagerly.
    """
    package = namespace["__name__"]
    clash = set(namespace) & set(exports)
    assert not clash, f"{package}: defined and lazily exported: {sorted(clash)}"

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> Iterable[str]:  # what tab completion offers: the API, not the plumbing
        public = set(namespace.get("__all__", ())) | set(exports)
        return sorted(public | {name for name in namespace if name.startswith("__")})

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
