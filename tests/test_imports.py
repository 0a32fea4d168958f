"""The import rules of docs/architecture.md, checked on the source (no module is imported).

Every ``.py`` file under the project's packages (migrations aside) is parsed with ``ast``
and every import is collected: at module level, inside functions and classes, and under
``if TYPE_CHECKING:``. Relative imports are resolved; ``from package import name`` counts
as an import of ``package.name`` when that is a module of the project. Importing a
module also runs its package's ``__init__``; that implied import is left out (a package
that re-exports its submodules, as ``crm.models`` does, would otherwise form a cycle with
each of them, which Python runs without trouble).

The rules:

(a) No cycle between modules. A cycle is a strongly connected component of more than one
    module in the graph of imports that run: module-level and function-local ones alike
    (an import inside a function hides a cycle, it does not break it). Imports under
    ``if TYPE_CHECKING:`` are left out of this check only: they never run, so they cannot
    make import order matter, and a type named for an annotation is how two modules of
    one floor describe the values they hand each other. They still count for (b).
(b) No upward import between floors, with rank crm=0, web=1, profiles=2, mailboxes=3,
    sync=4, console=5; a type is knowledge too, so ``TYPE_CHECKING`` imports count here.
    ``web`` sits just above crm's records and below every app's API, admin and pages,
    crm's own included: ``crm.api``, ``crm.serializers`` and ``crm.admin`` (crm's face on
    the web, built on web's base classes) rank between web and profiles.
    ``config`` is the wiring (settings, URLs, the Celery app): it may import anything, and
    nothing outside ``config`` imports it. Its helpers (``config.env``, ``config.api``,
    ``config.log_filters``) are named by dotted path in the settings, never imported by an
    app; a helper an app needs belongs on a floor (``web`` for web plumbing).
(c) No module uses another project module's ``_private`` name: neither imports it
    (``from sync.incoming import _receipt_for``) nor reaches it through an imported module
    (``incoming._receipt_for(...)``). What two modules share is public, or lives lower.
(d) A service does not import an entry point. The entry points are the Celery task
    module (``sync.tasks``), the page views (``*/views/*``), the management commands
    (``*/management/commands/*``), the REST APIs (``*/api.py``, ``*/*_api.py``) and the
    admin modules (``*/admin.py``): each reads input, checks the role and calls plain
    functions. They are imported only by other entry points and by the wiring
    (``config``, ``*/urls.py``).
(e) One way to enqueue each task: services enqueue through ``sync.enqueue``, which names
    the tasks by name and so imports none; ``sync.tasks`` is imported by no module of the
    project but the management commands (``ping_worker`` sends ``ping`` and waits for the
    answer). Beat's schedule in the settings names the periodic tasks by name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crm", "web", "profiles", "mailboxes", "sync", "console", "config")
FLOORS = {"crm": 0, "web": 1, "profiles": 2, "mailboxes": 3, "sync": 4, "console": 5}
CRM_WEB_FACE = frozenset({"crm.api", "crm.serializers", "crm.admin"})
TASKS = "sync.tasks"


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of the project
    name: str | None  # the name taken from it, when not a module itself
    line: int
    type_checking: bool

    def __str__(self) -> str:
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{self.importer}:{self.line} imports {what}"


@dataclass
class Source:
    modules: dict[str, Path] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def find_sources(root: Path, packages: tuple[str, ...]) -> Source:
    source = Source()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.relative_to(root).parts:
                continue
            name, is_package = _module_name(path, root)
            source.modules[name] = path
            if is_package:
                source.packages.add(name)
    return source


def _known(source: Source, dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the project."""
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in source.modules:
            return candidate
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


class _Collector(ast.NodeVisitor):
    def __init__(self, source: Source, module: str) -> None:
        self.source = source
        self.module = module
        self.imports: list[Import] = []
        self.private_uses: list[str] = []
        self.aliases: dict[str, str] = {}  # a local name bound to a dotted module path
        self._type_checking = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _add(self, target: str, name: str | None, line: int) -> None:
        self.imports.append(Import(self.module, target, name, line, self._type_checking > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            target = _known(self.source, alias.name)
            if target is None:
                continue
            self._add(target, None, node.lineno)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def _base(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self.module if self.module in self.source.packages else self.module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{node.module}" if node.module else package

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._base(node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.source.modules:
                self._add(submodule, None, node.lineno)
                self.aliases[alias.asname or alias.name] = submodule
                continue
            target = _known(self.source, base)
            if target is None:
                continue
            self._add(target, alias.name, node.lineno)
            if _private(alias.name) and target != self.module:
                self.private_uses.append(f"{self.module}:{node.lineno} imports {target}.{alias.name}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = _dotted(node.value)
        if dotted is not None and _private(node.attr):
            head, _, rest = dotted.partition(".")
            if head in self.aliases:
                path = f"{self.aliases[head]}.{rest}" if rest else self.aliases[head]
                if path in self.source.modules and path != self.module:
                    self.private_uses.append(f"{self.module}:{node.lineno} uses {path}.{node.attr}")
        self.generic_visit(node)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


@dataclass
class Graph:
    source: Source
    imports: list[Import]
    private_uses: list[str]


def build(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> Graph:
    source = find_sources(root, packages)
    imports: list[Import] = []
    private_uses: list[str] = []
    for module, path in source.modules.items():
        collector = _Collector(source, module)
        collector.visit(ast.parse(path.read_text(), filename=str(path)))
        imports += collector.imports
        private_uses += collector.private_uses
    return Graph(source, imports, private_uses)


GRAPH = build()


def strongly_connected(edges: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm, iteratively; yields each component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield sorted(component)


def _a_cycle(members: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One concrete cycle through the component, for the failure message."""
    inside = set(members)
    start = members[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(edges[path[-1]] & inside)
        if start in nxt and len(path) > 1:
            return [*path, start]
        step = next((n for n in nxt if n not in seen), None)
        if step is None:  # walk back into the cycle found so far
            return [*path, nxt[0]]
        path.append(step)
        seen.add(step)


def _floor(module: str) -> str:
    return module.split(".")[0]


def _rank(module: str) -> float:
    return FLOORS["web"] + 0.5 if module in CRM_WEB_FACE else FLOORS[_floor(module)]


def _is_entry_point(module: str) -> bool:
    parts = module.split(".")
    if _floor(module) == "config":
        return False  # the wiring, not an entry point (config.api is REST plumbing)
    return (
        module == TASKS
        or "views" in parts
        or ("management" in parts and "commands" in parts)
        or parts[-1] in ("api", "admin")
        or parts[-1].endswith("_api")
    )


def _is_wiring(module: str) -> bool:
    return _floor(module) == "config" or module.split(".")[-1] == "urls"


def _is_command(module: str) -> bool:
    parts = module.split(".")
    return "management" in parts and "commands" in parts


# -- the rules, as lists of what breaks them -----------------------------------------------


def cycles(graph: Graph) -> list[str]:
    edges: dict[str, set[str]] = {module: set() for module in graph.source.modules}
    for imp in graph.imports:
        if not imp.type_checking and imp.target != imp.importer:
            edges[imp.importer].add(imp.target)
    return [
        " -> ".join(_a_cycle(component, edges)) + f"  (component: {', '.join(component)})"
        for component in strongly_connected(edges)
        if len(component) > 1
    ]


def upward_imports(graph: Graph) -> list[str]:
    return [
        str(imp)
        for imp in graph.imports
        if _floor(imp.importer) in FLOORS
        and _floor(imp.target) in FLOORS
        and _rank(imp.target) > _rank(imp.importer)
    ]


def imports_of_config(graph: Graph) -> list[str]:
    return [
        str(imp)
        for imp in graph.imports
        if _floor(imp.target) == "config" and _floor(imp.importer) != "config"
    ]


def entry_points_imported_by_services(graph: Graph) -> list[str]:
    return [
        str(imp)
        for imp in graph.imports
        if _is_entry_point(imp.target) and not (_is_entry_point(imp.importer) or _is_wiring(imp.importer))
    ]


def imports_of_the_tasks(graph: Graph) -> list[str]:
    return [str(imp) for imp in graph.imports if imp.target == TASKS and not _is_command(imp.importer)]


# -- the project ------------------------------------------------------------------------------


def test_the_scan_sees_the_project_and_function_local_imports():
    modules = set(GRAPH.source.modules)
    assert len(modules) > 100
    assert {"sync.tasks", "sync.enqueue", "sync.incoming", "crm.models", "console.views.dashboard"} <= modules
    # crm.apps imports its signals inside ready(): the scan finds imports in functions.
    assert any(i.importer == "crm.apps" and i.target == "crm.signals" for i in GRAPH.imports)


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_no_upward_imports_between_floors():
    found = upward_imports(GRAPH)
    assert not found, "upward imports:\n" + "\n".join(found)


def test_nothing_outside_config_imports_config():
    found = imports_of_config(GRAPH)
    assert not found, "imports of config from the floors:\n" + "\n".join(found)


def test_no_module_uses_another_modules_private_names():
    found = GRAPH.private_uses
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_services_do_not_import_entry_points():
    found = entry_points_imported_by_services(GRAPH)
    assert not found, "entry points imported by services:\n" + "\n".join(found)


def test_tasks_are_enqueued_one_way():
    found = imports_of_the_tasks(GRAPH)
    assert not found, "imports of the task module (enqueue through sync.enqueue):\n" + "\n".join(found)


# -- the checker itself, on a made-up project ------------------------------------------------


def test_the_checker_finds_what_each_rule_forbids(tmp_path: Path):
    files = {
        "crm/__init__.py": "",
        "crm/models.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from sync import X\n",
        "sync/__init__.py": "",
        "sync/models.py": "from crm.models import Thing\n",
        "sync/tasks.py": "from . import incoming\n",
        "sync/incoming.py": "def run():\n    from sync import forwarding\n",
        "sync/forwarding.py": "from sync import incoming\nfrom .models import _hidden\n\nincoming._store()\n",
        "sync/checks.py": "from sync import typed\n\n\ndef later():\n    import sync.tasks\n",
        "sync/typed.py": "import typing\n\nif typing.TYPE_CHECKING:\n    from sync import checks\n",
        "sync/management/__init__.py": "",
        "sync/management/commands/__init__.py": "",
        "sync/management/commands/ping.py": "from sync.tasks import ping\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    graph = build(tmp_path, ("crm", "sync"))

    # The import inside run() closes the cycle; checks <-> typed runs one way only.
    assert cycles(graph) == [
        "sync.forwarding -> sync.incoming -> sync.forwarding  (component: sync.forwarding, sync.incoming)"
    ]
    assert upward_imports(graph) == ["crm.models:4 imports sync.X"]
    assert sorted(graph.private_uses) == [
        "sync.forwarding:2 imports sync.models._hidden",
        "sync.forwarding:4 uses sync.incoming._store",
    ]
    assert entry_points_imported_by_services(graph) == ["sync.checks:5 imports sync.tasks"]
    assert imports_of_the_tasks(graph) == ["sync.checks:5 imports sync.tasks"]
