"""Layers point one way: core ``enet`` <- ``enet.export`` <- ``enet.engine`` <- ``enet.bench`` / ``enet.deploy``.

Every import of every module (module level or inside a function, absolute or
relative) is read with ``ast``; an import of a higher layer, or between bench
and deploy, fails the test with file, line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> package, and each package's layer (higher may import lower).
FOLDERS = {"enet": "enet", "export": "enet.export", "engine": "enet.engine", "bench": "enet.bench",
           "deploy": "enet.deploy"}
RANK = {"enet": 0, "enet.export": 1, "enet.engine": 2, "enet.bench": 3, "enet.deploy": 3}


def layer_of(module: str) -> str | None:
    """The toolkit package a dotted module name belongs to (None: not the toolkit's)."""
    if module != "enet" and not module.startswith("enet."):
        return None
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in RANK else "enet"


def imported_modules(source: str, package: str, module: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in ``source`` (module ``module`` of ``package``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[:-1]  # ("enet.export.__init__" -> enet.export, too)
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from enet import export`` names a package, not a symbol
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names if f"{name}.{a.name}" in RANK]
    return found


def violation(importer: str, target: str) -> str | None:
    """Why ``importer`` (a package) may not import module ``target``, or None."""
    dest = layer_of(target)
    if dest is None or dest == importer:
        return None
    if RANK[dest] > RANK[importer]:
        return f"{importer} imports {target}, a layer above it"
    if RANK[dest] == RANK[importer]:
        return f"{importer} imports {target}: bench and deploy are independent"
    return None


def module_files() -> list[tuple[Path, str, str]]:
    out = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            module = ".".join([package, *rel.parts])
            out.append((path, package, module))
    return out


#: The package root re-exports the public API (``enet.Segmenter``), lazily: its one arrow upwards.
FACADE = {("enet.__init__", "enet.engine.runtime.segmenter")}


def check_source(source: str, package: str, module: str) -> list[str]:
    return [f"line {line}: {why}" for line, name in imported_modules(source, package, module)
            if (module, name) not in FACADE and (why := violation(package, name))]


def test_every_module_imports_downwards_only() -> None:
    files = module_files()
    assert len(files) > 60, "module discovery broke"
    problems = []
    for path, package, module in files:
        for p in check_source(path.read_text(encoding="utf-8"), package, module):
            problems.append(f"{path.relative_to(ROOT)} {p}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("package,module,source", [
    # the upward imports this test was written against (main before issue 11)
    ("enet", "enet.cli", "def eval_main():\n    from enet.engine.runtime.backend import open_backend\n"),
    ("enet", "enet.train", "class T:\n    def __init__(self):\n        from enet.engine.runtime.torch_backend import resolve_device\n"),
    ("enet", "enet.x", "import enet.export.onnx\n"),
    ("enet", "enet.x", "from enet import deploy\n"),
    ("enet.export", "enet.export.x", "from enet.engine.runtime.onnx_info import load_onnx\n"),
    ("enet.export", "enet.export.x", "from ..engine import backend\n"),
    ("enet.engine", "enet.engine.x", "from enet.bench.harness import measure\n"),
    ("enet.engine", "enet.engine.x", "from enet.deploy.backends import choose\n"),
    ("enet.deploy", "enet.deploy.x", "from enet.bench import probes\n"),
    ("enet.bench", "enet.bench.x", "from enet.deploy.pipeline import Pipeline\n"),
])
def test_the_checker_catches_each_forbidden_arrow(package: str, module: str, source: str) -> None:
    assert check_source(source, package, module)


@pytest.mark.parametrize("package,module,source", [
    ("enet.engine", "enet.engine.x", "from enet.export.metadata import read_onnx_metadata\nimport enet.transforms\n"),
    ("enet.export", "enet.export.onnx", "from .metadata import onnx_metadata\nfrom .parity import verify_parity\n"),
    ("enet.deploy", "enet.deploy.x", "from enet.engine.runtime import cuda\nfrom enet.deploy.uri import parse_input\n"),
    ("enet", "enet.x", "import numpy\nfrom enet.errors import EnetError\n"),
])
def test_the_checker_allows_downward_imports(package: str, module: str, source: str) -> None:
    assert check_source(source, package, module) == []


def test_deploy_uses_only_the_runtime_part_of_engine() -> None:
    """``enet.deploy`` opens backends; it never converts precision or builds engines itself."""
    problems = []
    for path, package, module in module_files():
        if package != "enet.deploy":
            continue
        for line, name in imported_modules(path.read_text(encoding="utf-8"), package, module):
            if layer_of(name) == "enet.engine" and not name.startswith("enet.engine.runtime"):
                problems.append(f"{path.relative_to(ROOT)} line {line}: imports {name}")
    assert not problems, "\n".join(problems)


def test_engine_runtime_imports_no_build_part_at_module_level() -> None:
    """``enet.engine.runtime`` sits under ``quant`` and ``trt``: only the first-run engine build reaches up, lazily."""
    problems = []
    for path in sorted((ROOT / "engine" / "runtime").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only; resolve.resolve imports trt.engine_cache inside
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            problems += [f"{path.name}: {n}" for n in names if n.startswith(("enet.engine.quant", "enet.engine.trt"))]
    assert not problems, problems
