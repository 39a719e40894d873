"""The ``tideflow`` command: ``run`` executes a manifest locally and ``validate`` reports its issues."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tideflow.cli import main

ROOT = Path(__file__).resolve().parents[2]


def manifest(
    tmp_path: Path, nodes: list[dict[str, Any]], connections: list[dict[str, Any]], name: str = "demo"
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tideflow.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"name": name},
                "spec": {"nodes": nodes, "connections": connections},
            }
        )
    )
    return path


def chain(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"id": f"{s}-{t}", "source": s, "target": t} for s, t in pairs]


def test_run_prints_progress_per_node_and_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(
        tmp_path,
        [
            {"id": "start", "type": "manual_trigger"},
            {"id": "greet", "type": "transform", "config": {"set": {"hello": "{{ trigger.inputs.who }}"}}},
            {"id": "say", "type": "log", "config": {"message": "said hello to {{ greet.hello }}"}},
        ],
        chain(("start", "greet"), ("greet", "say")),
    )
    status = main(["run", str(path), "--input", '{"who": "ada"}'])
    out, err = capsys.readouterr()
    assert status == 0
    assert json.loads(out) == {"say": {"level": "info", "message": "said hello to ada"}}
    lines = err.splitlines()
    assert lines[0].startswith("run demo-local-")
    started = [m.group(1) for line in lines if (m := re.search(r"\] start +(\w+) \(\w+\)$", line))]
    finished = [
        m.group(1) for line in lines if (m := re.search(r"\] completed +(\w+) \(\w+\) in [0-9.]+s$", line))
    ]
    assert started == ["start", "greet", "say"]
    assert finished == ["start", "greet", "say"]
    assert any("log:info" in line and "said hello to ada" in line for line in lines)
    assert re.match(r"run demo-local-\w+ Completed in [0-9.]+s$", lines[-1])


def test_a_failing_run_exits_non_zero_with_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDEFLOW_HTTP_ALLOWLIST", raising=False)
    path = manifest(
        tmp_path,
        [
            {"id": "start", "type": "manual_trigger"},
            # A loopback address is refused by the SSRF guard before any connection is made.
            {"id": "call", "type": "http_request", "config": {"url": "http://127.0.0.1:9/x"}},
        ],
        chain(("start", "call")),
    )
    status = main(["run", str(path)])
    out, err = capsys.readouterr()
    assert status == 1
    assert re.search(r"\] failed +call \(http_request\) in [0-9.]+s: GET http://127.0.0.1:9/x: refused", err)
    assert "Failed in" in err
    assert "loopback" in err
    assert json.loads(out) == {}


def test_an_approval_waits_unless_decided_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(
        tmp_path,
        [
            {"id": "start", "type": "manual_trigger"},
            {"id": "ok", "type": "approval", "config": {"message": "go?"}},
            {"id": "done", "type": "transform", "config": {"set": {"went": True}}},
        ],
        [
            {"id": "a", "source": "start", "target": "ok"},
            {"id": "b", "source": "ok", "sourcePort": "approved", "target": "done"},
        ],
    )
    assert main(["run", str(path)]) == 3
    out, err = capsys.readouterr()
    assert json.loads(out) == {"awaiting": ["ok"]}
    assert 'awaiting ok (approval): {"message": "go?"' in err
    assert main(["run", str(path), "--approve"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == {"done": {"went": True}}
    assert main(["run", str(path), "--reject"]) == 1
    _, err = capsys.readouterr()
    assert "rejected by tideflow run" in err


def test_validate_reports_errors_and_warnings_with_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(
        tmp_path,
        [
            {"id": "start", "type": "manual_trigger"},
            {"id": "call", "type": "http_request", "config": {"methd": "GET"}},
            {"id": "lonely", "type": "log", "config": {"message": "never runs"}},
            {"id": "x", "type": "log", "config": {"message": "{{ missing.value }}"}},
        ],
        chain(("start", "call"), ("call", "x")),
    )
    assert main(["validate", str(path)]) == 1
    _, err = capsys.readouterr()
    assert "error: spec.nodes[1].config" in err
    assert "missing" in err
    assert "warning: " in err
    assert re.search(r"demo.yaml: [1-9][0-9]* error\(s\), [1-9][0-9]* warning\(s\)$", err.strip())


def test_validate_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        assert main(["validate", str(example)]) == 0, capsys.readouterr().err
    _, err = capsys.readouterr()
    assert "0 error(s)" in err


def test_a_malformed_or_missing_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    malformed = tmp_path / "bad.yaml"
    malformed.write_text(
        yaml.safe_dump(
            {"kind": "Workflow", "apiVersion": "tideflow.io/v1alpha1", "spec": {"nodes": [{"id": "a b"}]}}
        )
    )
    assert main(["validate", str(malformed)]) == 1
    _, err = capsys.readouterr()
    assert "error: spec.nodes[0].id" in err
    assert "error: spec.nodes[0].type" in err
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["run", str(malformed), "--input", "[1]"]) == 2
    assert "--input must be a JSON object" in capsys.readouterr().err


def test_run_reads_a_bare_definition_like_the_mounted_config_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "definition.json"
    path.write_text(
        json.dumps(
            {
                "displayName": "ignored",
                "nodes": [
                    {"id": "start", "type": "manual_trigger"},
                    {"id": "t", "type": "transform", "config": {"set": {"n": "{{ trigger.inputs.n }}"}}},
                ],
                "connections": [{"id": "c", "source": "start", "target": "t"}],
            }
        )
    )
    assert main(["run", str(path), "-i", '{"n": 3}', "--trigger-type", "api"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"t": {"n": 3}}
    assert "(api)" in err.splitlines()[0]
