"""The shape of the code: layers import only downward, modules form no import cycle, the
low layers do not load Faust, and importing any module has no side effects.

The layering is written down once, in LAYERS below, and in docs/DEVELOPING.md.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("aegis_app", "agents", "tables", "models", "dashboard")

# Package -> the packages it may import (besides itself). Lower layers never import higher
# ones: this table is a directed acyclic graph, checked below.
LAYERS: dict[str, set[str]] = {
    "aegis_app.core": set(),
    "aegis_app.runtime": {"aegis_app.core"},
    "tables": {"aegis_app.core"},
    "models": {"aegis_app.core", "tables"},
    "aegis_app.kafka": {"aegis_app.core", "aegis_app.runtime"},
    "agents": {"aegis_app.core", "aegis_app.runtime", "aegis_app.kafka", "tables", "models"},
    "aegis_app.worker": {
        "aegis_app.core",
        "aegis_app.runtime",
        "aegis_app.kafka",
        "agents",
        "tables",
        "models",
    },
    "aegis_app.serving": {
        "aegis_app.core",
        "aegis_app.runtime",
        "aegis_app.kafka",
        "tables",
        "models",
    },
    "aegis_app.ingest": {"aegis_app.core", "aegis_app.kafka", "aegis_app.serving", "tables"},
    "dashboard": {"aegis_app.core"},
    "aegis_app.harness": {
        "aegis_app.core",
        "aegis_app.runtime",
        "aegis_app.kafka",
        "aegis_app.worker",
        "aegis_app.serving",
        "aegis_app.ingest",
        "agents",
        "tables",
        "models",
    },
}
LAYERS["aegis_app.cli"] = set(LAYERS) | {"dashboard"}

# Modules that are scripts run by a host program, not libraries: importing them runs them.
SCRIPTS = {"dashboard.app", "aegis_app.serving.store.migrations.env"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in TOP_LEVEL:
        for path in sorted((ROOT / top).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                if not path.name == "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        guarded = _under_type_checking(tree, node)
        for name in names:
            if name.split(".")[0] in TOP_LEVEL and not guarded:
                out.append((name, id(node) in top_level))
    return out


def _under_type_checking(tree: ast.Module, target: ast.AST) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            if any(child is target for child in ast.walk(node)):
                return True
    return False


def _package_of(module: str) -> str | None:
    for package in sorted(LAYERS, key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            return package
    return None


def test_every_module_belongs_to_a_layer():
    loose = [
        m
        for m in _modules()
        if _package_of(m) is None and m not in TOP_LEVEL and m != "aegis_app.__main__"
    ]
    assert not loose, f"modules outside every package of LAYERS: {loose}"


def test_the_layer_table_is_acyclic():
    seen: dict[str, int] = {}

    def visit(package: str, path: list[str]) -> None:
        if seen.get(package) == 1:
            raise AssertionError(f"cycle in LAYERS: {' -> '.join([*path, package])}")
        if seen.get(package) == 2:
            return
        seen[package] = 1
        for dep in LAYERS[package]:
            visit(dep, [*path, package])
        seen[package] = 2

    for package in LAYERS:
        visit(package, [])


def test_no_module_imports_a_higher_layer():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        own = _package_of(module)
        if own is None:
            continue
        for imported, _ in _imports(path, module):
            target = _package_of(imported)
            if target is None or target == own:
                continue
            if target not in LAYERS[own]:
                upward.append(f"{module} imports {imported} ({own} may not use {target})")
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_modules():
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imported, _ in _imports(path, module):
            # `from pkg import name` names a module or an attribute: keep only modules.
            if imported in modules and imported != module:
                graph[module].add(imported)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ is imported by every submodule import: not a cycle of code.
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(cycles)


def _run(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", ["tables", "models", "aegis_app.core"])
def test_the_low_layers_do_not_load_faust(package):
    modules = [m for m in _modules() if m == package or m.startswith(package + ".")]
    loaded = _run(
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in "
        "('faust', 'mode', 'aiokafka'))))"
    )
    assert loaded == [], f"importing {package} loaded {loaded[:5]}"


def test_importing_every_module_has_no_side_effects():
    """No Faust App built, no Faust/aiokafka class changed, no environment variable set.

    The third-party libraries are imported first: some set variables of their own
    (scikit-learn KMP_*, Streamlit MPLBACKEND), which is not Aegis's doing."""
    modules = [m for m in _modules() if m not in SCRIPTS]
    found = _run(
        "import gc, importlib, json, os\n"
        "import faust, sklearn, streamlit, aiokafka.consumer.fetcher as fetcher\n"
        "from faust.transport import consumer\n"
        "from faust.transport.drivers import aiokafka as driver\n"
        "classes = (consumer.Consumer, driver.AIOKafkaConsumerThread, fetcher.Fetcher, "
        "faust.App, faust.Table, faust.Stream, faust.Topic)\n"
        "def members(): return {f'{c.__name__}.{n}': id(v) for c in classes "
        "for n, v in vars(c).items()}\n"
        "before_env, before_members = dict(os.environ), members()\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "after = members()\n"
        "patched = sorted(k for k in set(before_members) | set(after) "
        "if before_members.get(k) != after.get(k))\n"
        "apps = [o for o in gc.get_objects() if isinstance(o, faust.App)]\n"
        "changed = sorted(k for k in set(before_env) | set(os.environ) "
        "if before_env.get(k) != os.environ.get(k))\n"
        "print(json.dumps({'patched': patched, 'apps': len(apps), 'env': changed}))"
    )
    assert found == {"patched": [], "apps": 0, "env": []}


def test_settings_are_read_only_through_the_settings_module():
    """AEGIS_* variables are read in aegis_app/core/settings.py and nowhere else (children's
    environments may still be written)."""
    readers = []
    for module, path in _modules().items():
        if module == "aegis_app.core.settings":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            subscript_read = (
                'environ["AEGIS' in code and not code.rstrip().endswith(")") and ("] =" not in code)
            )
            if "environ.get(" in code or "getenv(" in code or subscript_read:
                readers.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not readers, "\n".join(readers)
