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


def scheduled(tmp_path: Path, schedule: dict[str, Any], **spec: Any) -> Path:
    """A Workflow manifest with ``schedule`` (Active and deployed unless ``spec`` says otherwise)."""
    path = tmp_path / "nightly.yaml"
    body: dict[str, Any] = {
        "state": "Active",
        "deployed": True,
        "schedule": schedule,
        "nodes": [
            {"id": "tick", "type": "schedule_trigger"},
            {"id": "say", "type": "log", "config": {"message": "tick"}},
        ],
        "connections": chain(("tick", "say")),
        **spec,
    }
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tideflow.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"name": "nightly"},
                "spec": body,
            }
        )
    )
    return path


def fire_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("  ") and "  =  " in line]


def test_validate_previews_the_next_fire_times_in_the_zone_and_in_utc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Daily 02:30 in New York across the spring gap of Sunday 8 March 2026 (02:00 -> 03:00)."""
    path = scheduled(tmp_path, {"type": "daily", "time": "02:30", "timezone": "America/New_York"})
    assert main(["validate", str(path), "--next", "3", "--from", "2026-03-06T12:00:00Z"]) == 0
    out, err = capsys.readouterr()
    assert "0 error(s), 0 warning(s)" in err
    assert "schedule: daily at 02:30 in America/New_York" in out
    assert "schedule is active" in out
    assert "next 3 fire time(s) after 2026-03-06T12:00:00Z:" in out
    assert fire_lines(out) == [
        "Sat 2026-03-07 02:30:00 EST (-05:00)  =  2026-03-07T07:30:00Z",
        "Sun 2026-03-08 03:00:00 EDT (-04:00)  =  2026-03-08T07:00:00Z",  # the gap: its end, once
        "Mon 2026-03-09 02:30:00 EDT (-04:00)  =  2026-03-09T06:30:00Z",
    ]


def test_validate_previews_five_fire_times_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scheduled(tmp_path, {"type": "cron", "value": "*/15 9-17 * * 1-5", "timezone": "Asia/Kolkata"})
    assert main(["validate", str(path), "--from", "2026-01-02T11:50:00Z"]) == 0
    lines = fire_lines(capsys.readouterr().out)
    assert lines == [
        "Fri 2026-01-02 17:30:00 IST (+05:30)  =  2026-01-02T12:00:00Z",
        "Fri 2026-01-02 17:45:00 IST (+05:30)  =  2026-01-02T12:15:00Z",
        "Mon 2026-01-05 09:00:00 IST (+05:30)  =  2026-01-05T03:30:00Z",
        "Mon 2026-01-05 09:15:00 IST (+05:30)  =  2026-01-05T03:45:00Z",
        "Mon 2026-01-05 09:30:00 IST (+05:30)  =  2026-01-05T04:00:00Z",
    ]


def test_validate_previews_from_now_without_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scheduled(tmp_path, {"type": "interval", "value": "10 seconds"})
    assert main(["validate", str(path), "--next", "2"]) == 0
    out = capsys.readouterr().out
    assert "interval every 10 seconds" in out
    times = [line.rsplit("=", 1)[1].strip() for line in fire_lines(out)]
    assert len(times) == 2
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]0Z", text) for text in times), times


def test_a_paused_or_undeployed_schedule_says_why_it_is_not_active(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule = {"type": "weekly", "time": "08:00", "daysOfWeek": [1], "timezone": "Europe/Berlin"}
    path = scheduled(tmp_path, schedule, state="Paused")
    assert main(["validate", str(path), "--next", "1", "--from", "2026-01-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "schedule is not active (NotActive): The schedule is paused: the workflow is not Active." in out
    assert "(once it is active)" in out
    assert fire_lines(out) == ["Mon 2026-01-05 08:00:00 CET (+01:00)  =  2026-01-05T07:00:00Z"]
    path = scheduled(tmp_path, schedule, deployed=False)
    assert main(["validate", str(path), "--next", "1", "--from", "2026-01-01T00:00:00Z"]) == 0
    assert "schedule is not active (NotDeployed)" in capsys.readouterr().out


def test_an_invalid_schedule_is_an_error_with_its_path_and_no_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scheduled(tmp_path, {"type": "daily", "time": "02:30", "timezone": "Mars/Olympus_Mons"})
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "error: spec.schedule.timezone: " in err
    assert "1 error(s)" in err
    assert "schedule is not active (Invalid)" in out
    assert fire_lines(out) == []
    path = scheduled(tmp_path, {"type": "interval", "value": "5 seconds"})
    assert main(["validate", str(path)]) == 1
    assert "error: spec.schedule.value: " in capsys.readouterr().err


def test_a_graph_error_makes_the_schedule_inactive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scheduled(
        tmp_path,
        {"type": "daily", "time": "02:30"},
        connections=chain(("tick", "nowhere")),
    )
    assert main(["validate", str(path), "--next", "1", "--from", "2026-01-01T00:00:00Z"]) == 1
    out = capsys.readouterr().out
    assert "schedule is not active (Invalid)" in out
    assert fire_lines(out) == ["Thu 2026-01-01 02:30:00 UTC (+00:00)  =  2026-01-01T02:30:00Z"]


def test_no_schedule_and_bare_definitions_print_no_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path, [{"id": "start", "type": "manual_trigger"}], [])
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == "schedule: none (No schedule: runs start by trigger only.)\n"
    bare = tmp_path / "definition.json"
    bare.write_text(json.dumps({"nodes": [{"id": "start", "type": "manual_trigger"}]}))
    assert main(["validate", str(bare)]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("arguments", [["--next", "-1"], ["--next", "1001"], ["--next", "five"]])
def test_validate_refuses_a_bad_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    path = scheduled(tmp_path, {"type": "daily", "time": "02:30"})
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path), *arguments])
    assert exited.value.code == 2
    assert "--next" in capsys.readouterr().err


def test_validate_refuses_a_bad_from_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scheduled(tmp_path, {"type": "daily", "time": "02:30"})
    assert main(["validate", str(path), "--from", "yesterday"]) == 2
    assert "--from" in capsys.readouterr().err


def test_a_rare_schedule_previews_years_ahead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A leap-day cron fires once in four years; the preview has no horizon that would hide it."""
    path = scheduled(tmp_path, {"type": "cron", "value": "0 6 29 2 *"})
    assert main(["validate", str(path), "--next", "2", "--from", "2027-01-01T00:00:00Z"]) == 0
    assert fire_lines(capsys.readouterr().out) == [
        "Tue 2028-02-29 06:00:00 UTC (+00:00)  =  2028-02-29T06:00:00Z",
        "Sun 2032-02-29 06:00:00 UTC (+00:00)  =  2032-02-29T06:00:00Z",
    ]


def test_a_schedule_without_more_fire_times_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scheduled(tmp_path, {"type": "cron", "value": "0 6 29 2 *"})
    assert main(["validate", str(path), "--next", "3", "--from", "9990-01-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert [line[:14] for line in fire_lines(out)] == ["Sat 9992-02-29", "Thu 9996-02-29"]
    assert "next 2 fire time(s)" in out
    assert out.rstrip().endswith("(no later fire time)")
