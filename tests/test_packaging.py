"""Installed, the top-level folders live under one namespace: driftwise.models, .drift, .service, .bench.

The repository keeps the design card's folders (models/, drift/, service/,
bench/); pyproject.toml maps them under ``driftwise.*`` so site-packages never
gets generic top-level names such as ``models`` or ``service``.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("models", "drift", "service", "bench")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_mapped_under_driftwise():
    config = _setuptools()
    assert "find" not in config.get("packages", {}), "packages.find would install the folders under their own names"
    assert config["package-dir"] == {f"driftwise.{f}": f for f in FOLDERS}
    packages = config["packages"]
    assert packages and all(p.startswith("driftwise.") for p in packages), packages
    on_disk = sorted("driftwise." + ".".join(init.parent.relative_to(ROOT).parts)
                     for folder in FOLDERS for init in (ROOT / folder).rglob("__init__.py"))
    assert sorted(packages) == on_disk, "list every package folder in pyproject's [tool.setuptools] packages"


def test_console_script_is_under_driftwise():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"driftwise": "driftwise.service.cli:app"}


def test_installed_names_resolve():
    assert importlib.util.find_spec("driftwise.service.cli") is not None
    # Outside the repository (no cwd, no PYTHONPATH on sys.path): the old names are gone.
    code = ("import importlib.util as u, sys; "
            "assert u.find_spec('driftwise.service.cli') is not None; "
            f"found = [n for n in {FOLDERS!r} if u.find_spec(n) is not None]; "
            "sys.exit(f'importable as top-level names: {found}' if found else 0)")
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=ROOT.parent, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout


def test_no_source_imports_the_old_top_level_names():
    stale = []
    paths = sorted(p for folder in (*FOLDERS, "tests", "deploy") for p in (ROOT / folder).rglob("*.py"))
    for path in [*ROOT.glob("*.py"), *paths]:
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            stale += [f"{rel}:{node.lineno}: {n}" for n in names if n.split(".")[0] in FOLDERS]
    assert not stale, "import driftwise.<folder> instead:\n" + "\n".join(stale)
