"""First-party imports form no cycle and point down the layers, function-level imports included.

Every ``.py`` file of the first-party packages is parsed with ``ast`` and every import statement
counts wherever it sits (module level, inside a function or method, under ``TYPE_CHECKING``): a
cycle hidden in a function body is still a cycle. Tests, migrations, ``bench/`` and ``scripts/``
are not walked. Out of scope: modules named by string (``importlib.import_module("...")``,
Celery task names, ``include("ops.urls")``, dotted paths in settings), which nothing can check
before run time.

``LAYERS`` is the one table of the rules, lowest first. A module may import its own unit and any
unit of a lower row; never a higher row, and never another unit of its own row (siblings stay
independent). An app below an event's owner does not import the event's types: the owner wires
the lower app's handler (``bookings`` registers ``availability.handlers``).

The composition root (settings, urls, Celery app, wsgi/asgi, gunicorn config, and
``tourapp/__init__``, which loads the Celery app as Django expects) wires everything together, so
it sits on top: ``tourapp.urls`` mounting ``ops.urls`` is that wiring, not the kernel importing
``ops``. Everything else in ``tourapp`` is the shared kernel and imports no app.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COMPOSITION_ROOT = "composition root"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tourapp",),  # the shared kernel: exceptions, correlation, logging, metrics registry, db helpers...
    ("messaging",),  # generic infrastructure: no domain words
    ("accounts", "availability"),
    ("bookings",),  # reserves availability's seats; registers availability's handler for its events
    ("notifications", "payments"),  # react to booking events
    ("ops",),  # health, metrics, dashboard: reads every app, imported by none
    (COMPOSITION_ROOT,),
)
COMPOSITION_ROOT_MODULES = frozenset(
    {
        "tourapp",
        "tourapp.settings",
        "tourapp.urls",
        "tourapp.celery",
        "tourapp.wsgi",
        "tourapp.asgi",
        "tourapp.gunicorn.conf",
    }
)
PACKAGES = tuple(unit for row in LAYERS for unit in row if unit != COMPOSITION_ROOT)
SKIPPED_DIRECTORIES = frozenset({"tests", "migrations", "__pycache__"})

# module -> {imported module: "path:line" of the first import of it}
Graph = dict[str, dict[str, str]]


def _module_files(root: Path, packages: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if SKIPPED_DIRECTORIES & set(relative.parts[:-1]):
                continue
            parts = [*relative.parts[:-1], relative.name.removesuffix(".py")]
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), relative


def _imported_names(tree: ast.AST, *, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Dotted names each import statement may bind, wherever the statement is in the file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, one level up per extra dot
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            for alias in node.names:
                # ``from pkg import name``: the submodule ``pkg.name`` if there is one, else ``pkg``.
                yield f"{base}.{alias.name}", node.lineno


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> Graph:
    files = dict(_module_files(root, packages))

    def known(name: str) -> str:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name

    graph: Graph = {}
    for module, relative in files.items():
        tree = ast.parse((root / relative).read_text(), filename=str(relative))
        edges = graph.setdefault(module, {})
        for name, line in _imported_names(tree, module=module, is_package=relative.name == "__init__.py"):
            target = known(name)
            if target and target != module:
                edges.setdefault(target, f"{relative}:{line}")
    return graph


def import_cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component, as ``[a, b, ..., a]`` (Tarjan, then a BFS)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_shortest_cycle(graph, component) for component in components)


def _shortest_cycle(graph: Graph, component: set[str]) -> list[str]:
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph.get(node, {})):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if successor in component and successor not in came_from:
                    came_from[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")  # a component always has one


def describe_cycle(graph: Graph, cycle: list[str]) -> str:
    steps = [cycle[0]] + [f"-> {b} ({graph[a][b]})" for a, b in pairwise(cycle)]
    return " ".join(steps)


def unit_of(module: str) -> str:
    return COMPOSITION_ROOT if module in COMPOSITION_ROOT_MODULES else module.partition(".")[0]


def layer_of(unit: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int:
    return next(number for number, row in enumerate(layers) if unit in row)


def layer_violations(
    graph: Graph, *, unit: Callable[[str], str] = unit_of, layers: tuple[tuple[str, ...], ...] = LAYERS
) -> list[str]:
    """Imports of a higher layer, or of a sibling unit of the same layer, each named with its place."""
    found = []
    for module, edges in sorted(graph.items()):
        for target, place in sorted(edges.items()):
            source_unit, target_unit = unit(module), unit(target)
            if source_unit == target_unit:
                continue
            source_layer, target_layer = layer_of(source_unit, layers), layer_of(target_unit, layers)
            if target_layer > source_layer:
                found.append(f"{module} ({source_unit}) imports higher {target} ({target_unit}) at {place}")
            elif target_layer == source_layer:
                found.append(f"{module} ({source_unit}) imports sibling {target} ({target_unit}) at {place}")
    return found


# The checker itself, on tiny synthetic graphs and trees: each rule can fail.


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_import_cycles_names_a_cycle_and_ignores_a_chain():
    # given: a -> b -> c -> a, and d -> a (a chain into the cycle, not part of it)
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2"}, "c": {"a": "c.py:3"}, "d": {"a": "d.py:4"}}

    # when
    cycles = import_cycles(graph)

    # then
    assert cycles == [["a", "b", "c", "a"]]
    assert describe_cycle(graph, cycles[0]) == "a -> b (a.py:1) -> c (b.py:2) -> a (c.py:3)"


def test_import_cycles_finds_none_in_a_layered_graph():
    # given
    graph = {"top": {"middle": "top.py:1", "bottom": "top.py:2"}, "middle": {"bottom": "middle.py:1"}, "bottom": {}}

    # when / then
    assert import_cycles(graph) == []


def test_layer_violations_reports_an_upward_and_a_sibling_import_but_not_a_downward_one():
    # given
    layers = (("low",), ("left", "right"), ("high",))
    graph = {
        "low.models": {"high.views": "low/models.py:7"},
        "left.services": {"right.services": "left/services.py:3", "low.models": "left/services.py:4"},
        "high.views": {"left.services": "high/views.py:1"},
    }

    # when
    found = layer_violations(graph, unit=lambda module: module.partition(".")[0], layers=layers)

    # then
    assert found == [
        "left.services (left) imports sibling right.services (right) at left/services.py:3",
        "low.models (low) imports higher high.views (high) at low/models.py:7",
    ]


def test_composition_root_may_import_ops_but_the_kernel_may_not():
    # given
    graph = {
        "tourapp.urls": {"ops.urls": "tourapp/urls.py:10"},
        "tourapp.metrics": {"ops.selectors": "tourapp/metrics.py:5"},
    }

    # when
    found = layer_violations(graph)

    # then
    assert found == ["tourapp.metrics (tourapp) imports higher ops.selectors (ops) at tourapp/metrics.py:5"]


def test_import_graph_sees_function_level_relative_and_from_package_imports(tmp_path):
    # given: a tiny tree whose imports hide in a method, are relative, or name a submodule via its package
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/services.py": "class S:\n    def run(self):\n        from app import tasks\n",
            "app/tasks.py": "from .services import S\n",
            "app/api/__init__.py": "",
            "app/api/views.py": "from ..services import S\nimport app.tasks as t\nfrom app import missing\n",
            "app/tests/test_x.py": "from app import services\n",
            "app/migrations/0001_initial.py": "from app import services\n",
        },
    )

    # when
    graph = import_graph(tmp_path, ("app",))

    # then
    assert graph == {
        "app": {},
        "app.services": {"app.tasks": "app/services.py:3"},
        "app.tasks": {"app.services": "app/tasks.py:1"},
        "app.api": {},
        "app.api.views": {
            "app.services": "app/api/views.py:1",
            "app.tasks": "app/api/views.py:2",
            "app": "app/api/views.py:3",
        },
    }
    assert import_cycles(graph) == [["app.services", "app.tasks", "app.services"]]


# The real tree.


def test_import_graph_covers_the_first_party_packages():
    # given / when
    graph = import_graph(ROOT)

    # then: every package is walked, and a function-level import is seen (ops.health imports
    # messaging.amqp inside a method), so the two tests below cannot pass on an empty graph
    assert {module.partition(".")[0] for module in graph} == set(PACKAGES)
    assert set(graph) >= COMPOSITION_ROOT_MODULES
    assert "messaging.amqp" in graph["ops.health"]
    assert not any(".tests" in module or ".migrations" in module for module in graph)


def test_first_party_modules_import_each_other_without_cycles():
    # given
    graph = import_graph(ROOT)

    # when
    cycles = import_cycles(graph)

    # then
    assert cycles == [], "import cycles:\n" + "\n".join(describe_cycle(graph, cycle) for cycle in cycles)


def test_first_party_imports_point_down_the_layers():
    # given
    graph = import_graph(ROOT)

    # when
    found = layer_violations(graph)

    # then
    assert found == [], "imports against the layers (LAYERS, low to high):\n" + "\n".join(found)


def test_tasks_services_enqueue_by_name_are_registered_in_a_fresh_process():
    """Services enqueue their own app's tasks by name (the tasks import the services, never the
    reverse), so every process that dispatches (web, consumers) must have registered them at start."""
    # given: a new process, as a web or Kafka consumer process starts
    script = (
        "import json, django; django.setup()\n"
        "from celery import current_app\n"
        "from notifications.services import NOTIFICATION_SEND_BATCH_TASK as a\n"
        "from payments.services import PAYMENT_CHARGE_TASK as b, PAYMENT_REFUND_TASK as c\n"
        "print(json.dumps({name: name in current_app.tasks for name in (a, b, c)}))\n"
    )

    # when
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # then
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "notifications.tasks.notification_send_batch_task": True,
        "payments.tasks.payment_charge_task": True,
        "payments.tasks.payment_refund_task": True,
    }
