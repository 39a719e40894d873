"""Unit tests of the operator's settings (:mod:`tideflow.operator.settings`), read from ``TIDEFLOW_*``.

The environment is handed in as a mapping, so nothing here depends on (or changes) the test process's
own environment, except the one test that checks ``os.environ`` is the default source.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tideflow.operator.settings import OperatorSettings


def test_defaults_without_any_variable() -> None:
    settings = OperatorSettings.from_env({})
    assert settings == OperatorSettings()
    assert settings.runtime_image == "ghcr.io/tideflow/tideflow:0.1.0"
    assert settings.image_pull_policy == "IfNotPresent"
    assert settings.runtime_command == ("python", "-m", "tideflow.runtime")
    assert settings.runtime_port == 8080
    assert settings.runtime_service_account == "tideflow-runtime"
    assert settings.http_allowlist == ""
    assert settings.namespaces == ()  # all namespaces
    assert settings.resync_seconds == 30.0
    assert settings.standalone is True
    assert settings.metrics_port == 9090
    assert settings.liveness_port == 8081
    assert settings.clock_file is None
    assert settings.max_concurrent_reconciles == 8


def test_every_field_is_read_from_its_variable() -> None:
    settings = OperatorSettings.from_env(
        {
            "TIDEFLOW_RUNTIME_IMAGE": "registry.example.com/tideflow:1.2.3",
            "TIDEFLOW_IMAGE_PULL_POLICY": "Never",
            "TIDEFLOW_RUNTIME_COMMAND": "tideflow-runtime --serve",
            "TIDEFLOW_RUNTIME_PORT": "9000",
            "TIDEFLOW_RUNTIME_SERVICE_ACCOUNT": "runner",
            "TIDEFLOW_HTTP_ALLOWLIST": "10.0.0.0/8,internal.example.com",
            "TIDEFLOW_NAMESPACES": "team-a,team-b",
            "TIDEFLOW_RESYNC_SECONDS": "2.5",
            "TIDEFLOW_WATCH_SERVER_TIMEOUT": "60",
            "TIDEFLOW_WATCH_CLIENT_TIMEOUT": "90",
            "TIDEFLOW_STANDALONE": "false",
            "TIDEFLOW_PEERING_NAME": "tideflow-ha",
            "TIDEFLOW_METRICS_PORT": "0",
            "TIDEFLOW_LIVENESS_PORT": "0",
            "TIDEFLOW_CLOCK_FILE": "/var/run/tideflow/now",
            "TIDEFLOW_MAX_CONCURRENT_RECONCILES": "32",
        }
    )
    assert settings == OperatorSettings(
        runtime_image="registry.example.com/tideflow:1.2.3",
        image_pull_policy="Never",
        runtime_command=("tideflow-runtime", "--serve"),
        runtime_port=9000,
        runtime_service_account="runner",
        http_allowlist="10.0.0.0/8,internal.example.com",
        namespaces=("team-a", "team-b"),
        resync_seconds=2.5,
        watch_server_timeout=60,
        watch_client_timeout=90,
        standalone=False,
        peering_name="tideflow-ha",
        metrics_port=0,
        liveness_port=0,
        clock_file="/var/run/tideflow/now",
        max_concurrent_reconciles=32,
    )


def test_unrelated_variables_are_ignored() -> None:
    environ = {
        "PATH": "/usr/bin",
        "TIDEFLOW_NOT_A_SETTING": "x",
        "RUNTIME_IMAGE": "nope",
        "tideflow_runtime_port": "1",
    }
    assert OperatorSettings.from_env(environ) == OperatorSettings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("team-a", ("team-a",)),
        ("team-a,team-b", ("team-a", "team-b")),
        (" team-a , team-b ,, ", ("team-a", "team-b")),
        ("", ()),
        (" , ", ()),
    ],
)
def test_namespaces_are_a_comma_separated_list(value: str, expected: tuple[str, ...]) -> None:
    assert OperatorSettings.from_env({"TIDEFLOW_NAMESPACES": value}).namespaces == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '["python", "-m", "tideflow.runtime", "--port", "8080"]',
            ("python", "-m", "tideflow.runtime", "--port", "8080"),
        ),
        ('  ["/bin/runtime", "--name", "two words"]', ("/bin/runtime", "--name", "two words")),
        ("python -m tideflow.runtime", ("python", "-m", "tideflow.runtime")),
        ("  tideflow-runtime   --serve  ", ("tideflow-runtime", "--serve")),
    ],
)
def test_the_runtime_command_is_a_json_list_or_words(value: str, expected: tuple[str, ...]) -> None:
    assert OperatorSettings.from_env({"TIDEFLOW_RUNTIME_COMMAND": value}).runtime_command == expected


@pytest.mark.parametrize("value", ["true", "1", "yes", "on"])
def test_booleans_accept_the_usual_spellings_of_true(value: str) -> None:
    assert OperatorSettings.from_env({"TIDEFLOW_STANDALONE": value}).standalone is True


@pytest.mark.parametrize("value", ["false", "0", "no", "off"])
def test_booleans_accept_the_usual_spellings_of_false(value: str) -> None:
    assert OperatorSettings.from_env({"TIDEFLOW_STANDALONE": value}).standalone is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIDEFLOW_IMAGE_PULL_POLICY", "Sometimes"),
        ("TIDEFLOW_IMAGE_PULL_POLICY", "always"),
        ("TIDEFLOW_RUNTIME_PORT", "0"),
        ("TIDEFLOW_RUNTIME_PORT", "65536"),
        ("TIDEFLOW_RUNTIME_PORT", "http"),
        ("TIDEFLOW_RUNTIME_COMMAND", '["python", "-m"'),  # a list that is not valid JSON
        ("TIDEFLOW_RESYNC_SECONDS", "0"),
        ("TIDEFLOW_RESYNC_SECONDS", "-5"),
        ("TIDEFLOW_RESYNC_SECONDS", "soon"),
        ("TIDEFLOW_WATCH_SERVER_TIMEOUT", "5"),
        ("TIDEFLOW_WATCH_CLIENT_TIMEOUT", "1"),
        ("TIDEFLOW_STANDALONE", "maybe"),
        ("TIDEFLOW_METRICS_PORT", "-1"),
        ("TIDEFLOW_LIVENESS_PORT", "70000"),
        ("TIDEFLOW_MAX_CONCURRENT_RECONCILES", "0"),
        ("TIDEFLOW_MAX_CONCURRENT_RECONCILES", "1000"),
    ],
)
def test_invalid_values_are_refused_naming_the_setting(variable: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        OperatorSettings.from_env({variable: value})
    field = variable.removeprefix("TIDEFLOW_").lower()
    assert field in str(refused.value)


def test_settings_are_frozen() -> None:
    settings = OperatorSettings()
    with pytest.raises(ValidationError):
        setattr(settings, "runtime_port", 1)  # noqa: B010  (frozen: refused at run time)


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEFLOW_RUNTIME_IMAGE", "registry.example.com/from-env:1")
    monkeypatch.setenv("TIDEFLOW_NAMESPACES", "only-this-one")
    settings = OperatorSettings.from_env()
    assert settings.runtime_image == "registry.example.com/from-env:1"
    assert settings.namespaces == ("only-this-one",)
