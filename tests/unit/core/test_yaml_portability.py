"""Committed manifests mean the same to kubectl as to Python.

kubectl parses YAML with Go's yaml.v2, which follows YAML 1.1: a plain ``y``, ``n``, ``on`` or
``off`` is a boolean there, also as a mapping key. PyYAML does not read them so. Unquoted, the
property ``y`` of a node's ``position`` reached the API server as the key ``true``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = sorted([*ROOT.glob("crds/*.yaml"), *ROOT.glob("examples/*.yaml")])


class Yaml11Loader(yaml.SafeLoader):
    """A loader that resolves booleans the YAML 1.1 way, as Go's yaml.v2 does."""

    bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}


Yaml11Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
    list("yYnNtTfFoO"),
)


def test_there_are_manifests_to_check() -> None:
    assert len(MANIFESTS) >= 8


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_reads_the_same_under_yaml_1_1(path: Path) -> None:
    text = path.read_text()
    python_view: list[Any] = list(yaml.safe_load_all(text))
    kubectl_view: list[Any] = list(yaml.load_all(text, Loader=Yaml11Loader))
    assert kubectl_view == python_view


def test_the_yaml_1_1_loader_really_differs() -> None:
    assert yaml.load("{x: 0, y: 0}", Loader=Yaml11Loader) == {"x": 0, True: 0}  # noqa: S506
    assert yaml.safe_load("{x: 0, y: 0}") == {"x": 0, "y": 0}
