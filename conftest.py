"""pytest, at the repository root: the folders are tested under their installed names.

models/, drift/, service/ and bench/ are installed as driftwise.models,
driftwise.drift, driftwise.service and driftwise.bench (pyproject.toml). pytest
collects by file, and with the repository root on ``sys.path`` (``pythonpath``,
for ``tests.*``) it would import models/registry.py as ``models.registry``: a
second copy beside ``driftwise.models.registry``, with its own classes (a doctest
expecting ``driftwise.models.collapse.RepresentationCollapse`` would see
``models.collapse.RepresentationCollapse``) and its own module state. So:

* ``--doctest-modules`` (pyproject's ``addopts``) imports each file of those
  folders by its installed name, and a package's ``__init__.py`` is set up the
  same way;
* importing ``models``, ``drift``, ``service`` or ``bench`` from the repository
  root is refused, as it fails once installed: a stale import fails the tests
  instead of passing on a second copy.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

ROOT = Path(__file__).resolve().parent
NAMESPACE = "driftwise"
FOLDERS = ("models", "drift", "service", "bench")


def installed_name(path: Path) -> str | None:
    """``models/ssl/simclr.py`` -> ``driftwise.models.ssl.simclr``; None outside the installed folders."""
    try:
        rel = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if rel.suffix != ".py" or len(rel.parts) < 2 or rel.parts[0] not in FOLDERS:
        return None
    if not all((ROOT.joinpath(*rel.parts[:i]) / "__init__.py").is_file() for i in range(1, len(rel.parts))):
        return None  # not inside a package: not installed
    parts = rel.with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((NAMESPACE, *parts))


def _import(node: pytest.Collector, name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise node.CollectError(f"{node.path}: import {name} failed: {exc!r}") from exc


class InstalledDoctestModule(DoctestModule):
    """The file's doctests, run in the module imported by its installed name."""

    def _getobj(self):
        return _import(self, installed_name(self.path))


class InstalledPackage(pytest.Package):
    """A package folder whose ``__init__.py`` is imported by its installed name (pytest would use ``models``)."""

    def setup(self) -> None:
        module = _import(self, installed_name(self.path / "__init__.py"))
        hooks = [n for n in ("setUpModule", "setup_module", "tearDownModule", "teardown_module") if hasattr(module, n)]
        if hooks:  # pytest's own Package.setup would run them; nothing here does, so say so rather than skip them
            raise self.CollectError(f"{self.path}/__init__.py defines {hooks}: the root conftest.py does not run them")


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    collected = yield
    if installed_name(file_path) is None:
        return collected
    return [InstalledDoctestModule.from_parent(parent, path=file_path) if type(node) is DoctestModule else node
            for node in collected]


@pytest.hookimpl(wrapper=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector):
    node = yield
    if type(node) is pytest.Package and installed_name(path / "__init__.py") is not None:
        return InstalledPackage.from_parent(parent, path=path)
    return node


class _RefuseOldTopLevelNames(importlib.abc.MetaPathFinder):
    """``import models`` (or drift, service, bench) found in the repository root: refused, as once installed."""

    def find_spec(self, fullname, path, target=None):
        if path is None and fullname in FOLDERS \
                and importlib.machinery.PathFinder.find_spec(fullname, [str(ROOT)]) is not None:
            raise ModuleNotFoundError(f"No module named {fullname!r}: installed, {ROOT / fullname} is "
                                      f"{NAMESPACE}.{fullname} (pyproject.toml's package-dir)", name=fullname)
        return None


sys.meta_path.insert(0, _RefuseOldTopLevelNames())
