"""The package's shape: imports flow one way, the envelope stays Flask-free, the API is whole."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import flask_livekit_onboarding
from flask_livekit_onboarding import errors

PACKAGE = Path(flask_livekit_onboarding.__file__).parent
DOCS = PACKAGE.parent / "docs"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, type_checking: bool = False) -> set[str]:
    """Package modules ``path`` imports at run time (and under TYPE_CHECKING if asked)."""
    tree = ast.parse(path.read_text())
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if type_checking:
            break
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("flask_livekit_onboarding")}


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative).is_dir()


def _graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    return {
        _module_name(path): _imports(path, type_checking=type_checking)
        for path in PACKAGE.rglob("*.py")
    }


@pytest.mark.parametrize("type_checking", [False, True], ids=["run time", "type checking"])
def test_the_package_has_no_import_cycle(type_checking: bool) -> None:
    graph = _graph(type_checking=type_checking)
    if type_checking:
        # The package's own __init__ names its exports for type checkers only; submodules
        # reach it only for ``__version__``.
        graph = {m: i - {"flask_livekit_onboarding"} for m, i in graph.items()}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = trail[trail.index(module) :] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_lower_layers_never_import_the_http_side_or_the_extension() -> None:
    graph = _graph()
    upper = {"flask_livekit_onboarding.extension", "flask_livekit_onboarding.cli"}
    for module, imported in graph.items():
        if module.startswith("flask_livekit_onboarding.http") or module in upper:
            continue
        if module in {"flask_livekit_onboarding", "flask_livekit_onboarding.testing"}:
            continue
        assert not {i for i in imported if i.startswith("flask_livekit_onboarding.http")}, module
        assert not imported & upper, module


def test_the_envelope_reader_imports_without_flask() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('flask', 'werkzeug', 'blinker'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from flask_livekit_onboarding.envelope import decode_context\n"
        'print(decode_context(\'{"onboarding": {"owner": "a", "context": {"x": 1}}}\'))\n'
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'x': 1}"


def test_every_public_name_is_importable() -> None:
    for name in flask_livekit_onboarding.__all__:
        assert getattr(flask_livekit_onboarding, name) is not None, name


def test_the_error_table_lists_exactly_the_codes_the_code_sends() -> None:
    table = (DOCS / "errors.md").read_text()
    documented = set(re.findall(r"^\| \d{3} \| `(\w+)` \|", table, re.M))

    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    sent = {cls.error_code for cls in subclasses(errors.ApiError)} - {"error"}
    assert documented == sent


def test_the_configuration_table_lists_exactly_the_keys_the_code_reads() -> None:
    from flask_livekit_onboarding.config import DEFAULTS, REQUIRED, configuration_table

    table = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `(LIVEKIT_\w+)` \|", table, re.M))
    assert documented == set(DEFAULTS) | set(REQUIRED)
    # Defaults and meanings come from the settings table in config.py, row for row.
    assert configuration_table() in table


def _imports_in_a_fresh_interpreter(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_the_testing_kit_does_not_load_the_dev_server_runner() -> None:
    loaded = _imports_in_a_fresh_interpreter(
        "from flask_livekit_onboarding.testing import FakeLiveKit, sign_webhook"
    )
    assert "flask_livekit_onboarding.testing" in loaded
    assert "flask_livekit_onboarding.devserver" not in loaded


def test_the_dev_server_runner_never_builds_a_toolchain() -> None:
    from flask_livekit_onboarding import devserver

    source = Path(devserver.__file__).read_text()
    assert '"install"' not in source and "build_livekit_server" not in source


def test_no_livekit_server_is_one_error_naming_the_command_that_gets_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_livekit_onboarding.devserver import LiveKitServerError, ensure_livekit_server

    monkeypatch.delenv("LIVEKIT_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(LiveKitServerError) as raised:
        ensure_livekit_server()
    assert "go install github.com/livekit/livekit-server/cmd/server@v1.13.5" in str(raised.value)


def test_the_public_names_are_the_lazy_exports() -> None:
    exports = flask_livekit_onboarding._EXPORTS  # type: ignore[attr-defined]
    assert set(flask_livekit_onboarding.__all__) == set(exports) | {"__version__"}


def test_the_benchmark_has_no_import_cycle() -> None:
    folder = PACKAGE.parent / "benchmarks"
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    imported.add(node.module)
                else:
                    imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks."):
                imported.add(node.module.split(".")[1])  # type: ignore[union-attr]
        graph[path.stem] = imported

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for module in graph.get(start, ()):
            if module == target or (
                module not in seen and reaches(module, target, seen | {module})
            ):
                return True
        return False

    cycles = sorted(
        module for module in graph if module != "__main__" and reaches(module, module, set())
    )
    assert cycles == []


def test_no_two_public_functions_of_the_package_share_a_name() -> None:
    defined: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                defined.setdefault(node.name, []).append(_module_name(path))
    shared = {name: modules for name, modules in defined.items() if len(modules) > 1}
    assert shared == {}


def test_a_token_request_reads_in_the_view_the_token_flow_and_the_minting() -> None:
    graph = _graph()
    view = graph["flask_livekit_onboarding.http.token_view"]
    assert "flask_livekit_onboarding.token_flow" in view
    assert "flask_livekit_onboarding.sessions" not in view
    flow = graph["flask_livekit_onboarding.token_flow"]
    assert "flask_livekit_onboarding.tokens" in flow
    assert "flask_livekit_onboarding.sessions" not in flow
