"""The package's folders are layers: no import runs from a lower layer to a higher one, and no
import goes round in a circle (docs/ARCHITECTURE.md, "The pipeline").

Every import counts, wherever it is written: at the top of a module, inside a function, or under
``if TYPE_CHECKING:`` (a type-only import still says which way the knowledge runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import twostream_das

PACKAGE = Path(twostream_das.__file__).resolve().parent
ROOT = "twostream_das"

# lowest first; a module imports only from its own unit and from units on earlier lines
LAYERS = [
    ["errors", "_version", "sampling_math"],
    ["config", "atomic"],
    ["data", "kernels", "metrics", "runtime", "choices"],
    ["diffusion", "distributed", "outputs"],
    ["model"],
    ["checkpoint"],
    ["prediction"],
    ["runs"],
    ["extraction"],
    ["tools"],
    ["deploy"],  # ONNX export (over the model) and the torch-free runtime
    ["workflows"],
    ["cli", "api"],  # the Python API and the command line, each over the workflows
    ["__init__", "__main__"],  # the package root: its lazy ``__getattr__`` reads api
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}

ALLOWED_UPWARD = {
    # LoadedModel.predict is twostream_das.predict bound to the model (the Python API's
    # convenience): a call-time import inside that one method. The one exception;
    # moving the method to the API layer would end it.
    ("twostream_das.prediction.inference", "twostream_das.api"),
    # fusion inside the sampler (fusion.sampling = joint) has the model fuse the streams at
    # every step: model/multi_stream.py imports prediction/fusion.py; the fusion math belongs
    # below the model (a leaf both import) to end this one
    ("twostream_das.model.multi_stream", "twostream_das.prediction.fusion"),
}

ALLOWED_CIRCLES = {
    # prediction/inference.py and prediction/uncertainty.py import each other (the joint
    # sampler's uncertainty inputs); one of them should hand the other its types
    ("twostream_das.prediction.uncertainty", "twostream_das.prediction.inference"),
    # deploy/runtime.py and deploy/outputs.py import each other (added with the ONNX runtime)
    ("twostream_das.deploy.outputs", "twostream_das.deploy.runtime"),
}


def module_name(path: Path) -> str:
    parts = (ROOT, *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def unit(module: str) -> str:
    """The layer unit of a module: its top folder, or its file at the package root."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports (``from X import y`` imports X, and X.y
    where that is a module)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES)
    return found - {module}


GRAPH = {module: imports(module) for module in MODULES}


def test_every_unit_has_a_layer():
    assert {unit(m) for m in MODULES} <= set(RANK), "place the new folder or module in LAYERS"


def test_no_import_runs_up_the_layers():
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if unit(target) != unit(module) and RANK[unit(target)] >= RANK[unit(module)]
        and (module, target) not in ALLOWED_UPWARD
    ]
    assert upward == []


def test_no_import_circles():
    # a submodule's import of its own package (``from . import x``) is the package importing
    # itself; only the edges between distinct modules that are not ancestors count
    def edges(module: str) -> list[str]:
        return [
            t for t in sorted(GRAPH[module])
            if not module.startswith(t + ".") and (module, t) not in ALLOWED_UPWARD
            and (module, t) not in ALLOWED_CIRCLES
        ]

    done: set[str] = set()
    circles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            circles.append(" -> ".join(path[path.index(module) :] + [module]))
            return
        if module in done:
            return
        for target in edges(module):
            visit(target, path + [module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])
    assert circles == []


def test_the_walk_sees_the_arrows_it_checks():
    # the checker itself: relative imports resolve, and a package's names resolve to modules
    assert f"{ROOT}.config" in GRAPH[f"{ROOT}.model.stream"]
    assert f"{ROOT}.kernels.native" in GRAPH[f"{ROOT}.kernels.fast"]
    assert f"{ROOT}.diffusion" in GRAPH[f"{ROOT}.model.stream"]
    assert f"{ROOT}.api" in GRAPH[ROOT]


def test_no_module_takes_a_name_of_the_api():
    # importing twostream_das.X sets the root's attribute X: a folder or module named like an
    # API name (``predict``) would replace that function for everyone once anything imports it
    assert not {unit(m) for m in MODULES} & set(twostream_das.__all__)
