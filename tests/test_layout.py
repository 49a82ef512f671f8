"""The layout rules the code is held to, checked by reading the source (no services, seconds).

- ``worker/`` is the framework: no word of a provider or of the video kind (KIE, OpenAI,
  video, Sora) in its code or its templates; comments and docstrings may use them as examples.
- ``worker/`` never imports the simulator when a module is loaded (a command may, lazily).
- Dramatiq's internals are used in one module, ``worker/dramatiq_internals.py``, which checks the
  installed version.
- Small homes: no file under ``worker/`` is over 500 lines, no function in ``worker/`` or
  ``jobs/`` over 80 (a CLI printer that reads top to bottom may be longer: :data:`LONG_PRINTERS`).

Each test lists every offence with its place, so one run shows all there is to fix.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "worker"

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80

#: Functions allowed over MAX_FUNCTION_LINES, each with the reason.
LONG_PRINTERS: dict[str, str] = {
    # One table after another, in the order the operator reads them; splitting it would only
    # scatter the layout of one screen over several functions.
    "worker/cli/stats_cmd.py:_print": "prints `worker jobs stats`, top to bottom",
}

#: Words that belong to a job kind or its providers, never to the framework's code.
_KIND_WORDS = re.compile(r"(?<![a-z])(kie|openai|videos?|sora)(?![a-z])")

#: Dramatiq internals: private names, and public-looking ones Dramatiq does not document.
_DRAMATIQ_PRIVATE = {
    "_max_unpack_size",
    "_should_do_maintenance",
    "_dispatch",
    "message_cache",
    "consumers",
    "scripts",
}
_DRAMATIQ_HOME = "worker/dramatiq_internals.py"


def _python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def _words(text: str) -> list[str]:
    """The kind words in ``text``, with camelCase split (``KieClient`` has "kie")."""
    split = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text).lower()
    return [m.group(1) for m in _KIND_WORDS.finditer(split)]


def _docstring_lines(tree: ast.Module) -> set[int]:
    """The lines of every docstring (module, class, function)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def _code_offences(path: Path) -> list[str]:
    """Kind words in a Python file's code (names, strings), not in comments or docstrings."""
    source = path.read_text(encoding="utf-8")
    docstrings = _docstring_lines(ast.parse(source))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            continue
        if tok.type == tokenize.STRING and tok.start[0] in docstrings:
            continue
        words = _words(tok.string)
        if words:
            found.append(f"{_rel(path)}:{tok.start[0]}: {', '.join(sorted(set(words)))}")
    return found


def test_the_framework_says_nothing_of_kinds_or_providers() -> None:
    offences = []
    for path in _python_files(WORKER):
        offences += _code_offences(path)
    for path in sorted(WORKER.rglob("*")):
        if path.is_file() and path.suffix in {".html", ".js", ".css", ".sql", ".txt", ".toml"}:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                words = _words(line)
                if words:
                    offences.append(f"{_rel(path)}:{number}: {', '.join(sorted(set(words)))}")
    assert not offences, f"{len(offences)} kind or provider words in worker/:\n" + "\n".join(
        offences
    )


def _module_level_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Imports that run when the module is loaded: not inside a function, nor under
    ``if TYPE_CHECKING:``."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        pending.extend(ast.iter_child_nodes(node))


def _simulator_offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{_rel(path)}:{line}: import {module}"
        for line, module in _module_level_imports(tree)
        if module == "simulator" or module.startswith("simulator.")
    ]


def test_the_framework_does_not_import_the_simulator_at_module_level() -> None:
    offences = [o for path in _python_files(WORKER) for o in _simulator_offences(path)]
    assert not offences, "worker/ imports the simulator when loaded:\n" + "\n".join(offences)


def _dramatiq_offences(path: Path) -> list[str]:
    return [
        f"{_rel(path)}:{node.lineno}: .{node.attr}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in _DRAMATIQ_PRIVATE
    ]


def test_dramatiq_internals_are_used_in_one_module() -> None:
    offences = [
        o
        for path in _python_files(WORKER, ROOT / "jobs", ROOT / "benchmarks")
        if _rel(path) != _DRAMATIQ_HOME
        for o in _dramatiq_offences(path)
    ]
    assert not offences, f"Dramatiq internals outside {_DRAMATIQ_HOME}:\n" + "\n".join(offences)


#: Files that exist only outside the repository (spelled in two parts so this file is clean).
_OUTSIDE = re.compile(
    "|".join(
        re.escape(a + b)
        for a, b in [
            ("CONTRACT", ".md"),
            ("DESIGN", ".md"),
            ("../", "shared"),
            ("/work/", "shared"),
        ]
    )
)


def test_nothing_cites_a_file_outside_the_repository() -> None:
    offences = []
    paths = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for folder in (
        "worker",
        "jobs",
        "simulator",
        "benchmarks",
        "tests",
        "docs",
        "deploy",
        "migrations",
    ):
        paths += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file()]
    for path in paths:
        if "__pycache__" in path.parts or path.suffix in {".png", ".pyc", ".jpg", ".mp4"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                offences.append(f"{_rel(path)}:{number}: {line.strip()[:80]}")
    assert not offences, "citations of files outside the repository:\n" + "\n".join(offences)


def test_the_architecture_names_every_module_of_the_framework() -> None:
    """docs/architecture.md's module list stays true as modules come and go."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [p.stem for p in WORKER.glob("*.py") if p.stem != "__init__"]
    modules += [f"{p.name}/" for p in WORKER.iterdir() if (p / "__init__.py").is_file()]
    missing = sorted(m for m in modules if f"`{m}`" not in doc)
    assert not missing, f"docs/architecture.md does not name worker's {', '.join(missing)}"


def test_no_file_in_the_framework_is_over_500_lines() -> None:
    long = []
    for path in _python_files(WORKER):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            long.append(f"{_rel(path)}: {lines} lines")
    assert not long, f"files over {MAX_FILE_LINES} lines:\n" + "\n".join(long)


def test_no_function_is_over_80_lines() -> None:
    long = []
    seen = set()
    for path in _python_files(WORKER, ROOT / "jobs"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{_rel(path)}:{node.name}"
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if name in LONG_PRINTERS:
                    seen.add(name)
                elif lines > MAX_FUNCTION_LINES:
                    long.append(f"{name} (line {node.lineno}): {lines} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
    assert seen == set(LONG_PRINTERS), f"allowed but gone: {set(LONG_PRINTERS) - seen}"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("KieClient", ["kie"]),
        ("kie_api_keys", ["kie"]),
        ("OPENAI_API_KEYS", ["openai"]),
        ("submit_video", ["video"]),
        ("videos", ["videos"]),
        ("sora-2-image-to-video", ["sora", "video"]),
        ("cookie", []),
        ("set_cookie", []),
        ("provider", []),
        ("Sorai", []),
    ],
)
def test_the_word_check_finds_words_not_substrings(text: str, words: list[str]) -> None:
    assert _words(text) == words


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """Each detector finds what it is for in a sample (and only that)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""A docstring may say KIE."""\n'
        "from typing import TYPE_CHECKING\n"
        "import simulator.server  # loaded with the module\n"
        "if TYPE_CHECKING:\n"
        "    import simulator.state\n"
        "\n"
        "\n"
        "def f(broker):  # a comment may say video\n"
        "    import simulator.state\n"
        "    cache = broker.consumer.message_cache\n"
        '    return "kie" + str(cache)\n',
        encoding="utf-8",
    )
    assert _simulator_offences(sample) == ["sample.py:3: import simulator.server"]
    assert _code_offences(sample) == ["sample.py:11: kie"]
    assert _dramatiq_offences(sample) == ["sample.py:10: .message_cache"]
