"""One registry for every name a YAML config can mention.

A config says ``arch: blip2_mr`` or ``fusion: gca``; the registry maps that name to a class.
Registering modules are imported lazily: the first lookup of a kind imports every module of the
package that holds that kind (``lavis.models`` for models and fusions, ...). So ``import lavis``
stays light, and nothing needs a central list of modules or a star import.

LAVIS spelling works: ``@registry.register_model("blip2_mr")``, ``registry.get_model_class(name)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from lavis.common.constraints import did_you_mean
from lavis.common.errors import UserError

T = TypeVar("T")

# kind -> package whose modules are imported on the first lookup of that kind.
KIND_PACKAGES: dict[str, str] = {
    "model": "lavis.models",
    "fusion": "lavis.models",
    "builder": "lavis.datasets",
    "processor": "lavis.datasets",
    "task": "lavis.tasks",
    "metric_family": "lavis.tasks",
    "runner": "lavis.runners",
    "strategy": "lavis.runners",
    "hook": "lavis.runners",
}


class RegistryError(UserError, KeyError):
    """A name that is unknown or registered twice. ``str()`` gives the plain message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _import_package_modules(package_name: str) -> None:
    """Import every module under ``package_name`` (recursively) so their decorators run."""
    package = importlib.import_module(package_name)
    for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
        importlib.import_module(info.name)


class Registry:
    """Name -> registered object, per kind; each kind's package is imported on its first lookup.

    Args:
        kind_packages: kind -> the package whose modules register objects of that kind.

    Example:
        >>> reg = Registry({"fusion": "lavis.models"})
        >>> @reg.register_fusion("toy")  # LAVIS spelling of reg.register("fusion", "toy")
        ... class ToyFusion:
        ...     pass
        >>> reg.get_fusion_class("toy") is reg.get("fusion", "toy") is ToyFusion
        True
    """

    def __init__(self, kind_packages: dict[str, str]):
        self._kind_packages = dict(kind_packages)
        self._entries: dict[str, dict[str, Any]] = {kind: {} for kind in kind_packages}
        self._imported: set[str] = set()

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds names can be registered under (``model``, ``fusion``, ``builder``, ...)."""
        return tuple(self._entries)

    def _check_kind(self, kind: str) -> None:
        if kind not in self._entries:
            raise RegistryError(f"unknown registry kind {kind!r}; kinds are {sorted(self._entries)}")

    def _ensure_imported(self, kind: str) -> None:
        package = self._kind_packages[kind]
        if package not in self._imported:
            # Mark first: a module being imported may itself look something up.
            self._imported.add(package)
            _import_package_modules(package)

    def register(self, kind: str, name: str) -> Callable[[T], T]:
        """A decorator registering its class (or any object) as ``name`` of ``kind``.

        Args:
            kind: one of ``kinds``; ``register_<kind>(name)`` is the same call (LAVIS spelling).
            name: the name configs use (``model.arch: blip2_mr``, ``model.fusion.name: gca``).

        Returns:
            The decorator; it returns the object unchanged. Registering another object under a
            taken name raises ``RegistryError`` naming both (re-importing a module does not).

        Example:
            >>> reg = Registry({"builder": "lavis.datasets"})
            >>> Toy = reg.register("builder", "toy")(type("Toy", (), {}))
            >>> reg.names("builder")[-1], reg.get("builder", "toy") is Toy
            ('toy', True)
        """
        self._check_kind(kind)

        def decorator(obj: T) -> T:
            table = self._entries[kind]
            existing = table.get(name)
            # Re-importing the same module (e.g. reload) is not a duplicate.
            if existing is not None and _qualname(existing) != _qualname(obj):
                raise RegistryError(
                    f"{kind} name {name!r} is registered twice: by {_qualname(existing)} and by {_qualname(obj)}"
                )
            table[name] = obj
            return obj

        return decorator

    def get(self, kind: str, name: str) -> Any:
        """The object registered as ``name`` of ``kind`` (``get_<kind>_class(name)`` in LAVIS
        spelling), importing the kind's package first if needed; an unknown name raises
        ``RegistryError`` listing the registered ones."""
        self._check_kind(kind)
        if name not in self._entries[kind]:
            self._ensure_imported(kind)
        try:
            return self._entries[kind][name]
        except KeyError:
            names = self.names(kind)
            raise RegistryError(
                f"unknown {kind} {name!r}{did_you_mean(name, names)}; registered {kind}s: {names}"
            ) from None

    def names(self, kind: str) -> list[str]:
        """Every name registered for ``kind`` (its package imported first), sorted."""
        self._check_kind(kind)
        self._ensure_imported(kind)
        return sorted(self._entries[kind])

    # LAVIS spelling -------------------------------------------------------------------------
    def __getattr__(self, attr: str) -> Callable[..., Any]:
        """``register_<kind>(name)`` and ``get_<kind>[_class](name)``: ``register`` and ``get``
        with the kind in the method name, as LAVIS spells them."""
        for prefix, method in (("register_", self.register), ("get_", self.get)):
            if attr.startswith(prefix):
                kind = attr[len(prefix) :]
                if kind.endswith("_class"):
                    kind = kind[: -len("_class")]
                if kind in self._entries:
                    return lambda name, _m=method, _k=kind: _m(_k, name)
        raise AttributeError(attr)


registry = Registry(KIND_PACKAGES)
