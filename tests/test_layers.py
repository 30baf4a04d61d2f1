"""The package layout is the pipeline: lower layers never import upper ones, and nothing imports
in a cycle (docs/architecture.md, "Packages and layers"). Read statically from the sources."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

PKG = Path(__file__).resolve().parents[1] / "mcx_review"

# (module prefix, layer): the first prefix that matches decides; a module may import its own layer
# or any lower one.
LAYERS = [
    ("mcx_review.errors", 0), ("mcx_review.log", 0), ("mcx_review.globs", 0), ("mcx_review.units", 0),
    ("mcx_review.schema_check", 0), ("mcx_review.report.types", 0),
    ("mcx_review.settings", 1),
    ("mcx_review.select", 2),
    ("mcx_review.report", 3), ("mcx_review.metafile.verdicts", 3),
    ("mcx_review.metafile", 4), ("mcx_review.measure", 4),
    ("mcx_review.render", 5),
    ("mcx_review.github", 6),
    ("mcx_review.review", 7), ("mcx_review.deliver", 7),
    ("mcx_review.cli", 8), ("mcx_review.worker", 8), ("mcx_review.report_validate", 8),
    ("mcx_review.__main__", 8), ("mcx_review", 0),  # the package itself: __version__
]


def _modules() -> Dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _layer(module: str) -> int:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{module}: no layer (add it to LAYERS and docs/architecture.md)")


def _imports(modules: Dict[str, Path]) -> Dict[str, Set[str]]:
    """Every mcx_review module each module imports, at the top or inside a function."""
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mcx_review"):
                assert node.level == 0, f"{name}: relative import"
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("mcx_review"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_lower_layers_never_import_upper_ones():
    modules = _modules()
    wrong = sorted(f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
                   for m, deps in _imports(modules).items() for d in deps if _layer(d) > _layer(m))
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _imports(_modules())
    cycles = []

    def visit(node: str, path: list, done: set) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep], done)
        done.add(node)

    done: set = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], done)
    assert not cycles, cycles[:5]


def test_the_rule_is_live():
    """A planted upward import is caught (so the test above cannot pass vacuously)."""
    graph = _imports(_modules())
    assert "mcx_review.report.types" in graph["mcx_review.settings"]
    assert _layer("mcx_review.render.markdown") > _layer("mcx_review.report.compare")
    assert any(d.startswith("mcx_review.select") for d in graph["mcx_review.review"])
