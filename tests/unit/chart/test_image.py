"""The Dockerfile builds the image the chart runs: multi-stage, slim, non-root, the three entry points.

There is no Docker engine here, so the build itself is exercised by ``make image`` and the kind suite
(tests/e2e); these tests read the Dockerfile's instructions and the ``.dockerignore`` and check what
the chart and the operator rely on.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from tests.unit.chart.rendering import ROOT, render

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined and comment lines dropped."""

    keyword: str
    argument: str


def instructions() -> list[Instruction]:
    found: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += (
            " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        )
        if not stripped.endswith("\\"):
            keyword, _, argument = pending.partition(" ")
            found.append(Instruction(keyword.upper(), argument.strip()))
            pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return found


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def args() -> dict[str, str]:
    return {
        name: value
        for instruction in instructions()
        if instruction.keyword == "ARG" and "=" in instruction.argument
        for name, value in [instruction.argument.split("=", 1)]
    }


def test_the_image_is_built_in_stages_on_a_slim_python_base() -> None:
    built = stages()
    assert len(built) >= 2
    base = args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    assert built[-1][0].argument == "${PYTHON_IMAGE}"
    assert built[0][0].argument == "${PYTHON_IMAGE} AS build"


def test_the_final_stage_installs_nothing_and_only_copies_the_virtualenv() -> None:
    final = stages()[-1]
    runs = " ".join(i.argument for i in final if i.keyword == "RUN")
    for tool in ("apt-get", "apk", "pip install", "gcc", "make", "build-essential", "curl", "wget"):
        assert tool not in runs, tool
    copies = [i.argument for i in final if i.keyword in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/tideflow /opt/tideflow"]


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [i.argument for i in final if i.keyword == "USER"]
    assert users == ["${UID}:${UID}"]
    uid = int(args()["UID"])
    assert uid >= 10000, "outside the range of users a host is likely to have"
    assert final[-1].keyword == "CMD", "USER comes before the command, never reset after it"


def test_the_three_entry_points_are_what_the_chart_and_the_operator_run() -> None:
    build = " ".join(i.argument for i in stages()[0] if i.keyword == "RUN")
    assert "import tideflow.operator.main, tideflow.runtime.server, tideflow.api.app" in build
    final = stages()[-1]
    assert [i.argument for i in final if i.keyword == "CMD"] == ['["python", "-m", "tideflow.api"]']
    assert not [i for i in final if i.keyword == "ENTRYPOINT"], "the chart and the operator set the command"
    commands = {
        deployment["metadata"]["name"]: deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        for deployment in render().of_kind("Deployment")
    }
    assert commands == {
        "tf-tideflow-operator": ["python", "-m", "tideflow.operator"],
        "tf-tideflow-api": ["python", "-m", "tideflow.api"],
    }
    env = [i.argument for i in final if i.keyword == "ENV"]
    assert any("PATH=/opt/tideflow/bin:$PATH" in e for e in env), "`python` must be the virtualenv's"


def test_dependencies_are_pinned_by_the_constraints() -> None:
    build = [i.argument for i in stages()[0] if i.keyword == "RUN"]
    installs = [part for command in build for part in command.split("&&") if "pip install" in part]
    assert len(installs) == 2
    assert all("--constraint constraints.txt" in part for part in installs)
    assert not any("[dev]" in part or "[sandbox]" in part for part in installs)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching pattern wins)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        candidates = [path, *[path.rsplit("/", n)[0] for n in range(1, path.count("/") + 1)]]
        if any(fnmatch.fnmatch(candidate, pattern) for candidate in candidates):
            ignored = not negated
    return ignored


def test_the_build_context_holds_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        source
        for instruction in instructions()
        if instruction.keyword == "COPY" and not instruction.argument.startswith("--from")
        for source in instruction.argument.split()[:-1]
    ]
    assert copied == ["pyproject.toml", "constraints.txt", "README.md", "tideflow"]
    for path in ("pyproject.toml", "constraints.txt", "README.md", "tideflow/operator/main.py"):
        assert not _ignored(path, patterns), path
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".sandbox/state",
        "tests/unit/__init__.py",
        "charts/x",
        "tideflow/core/__pycache__/names.cpython-311.pyc",
    ):
        assert _ignored(path, patterns), path
