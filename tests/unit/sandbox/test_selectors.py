"""Label and field selector parsing and matching, as the Kubernetes labels documentation defines them."""

from __future__ import annotations

import pytest

from tideflow.sandbox.errors import ApiError
from tideflow.sandbox.selectors import (
    fields_match,
    format_label_selector,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
)


def obj(**labels: str) -> dict[str, object]:
    return {"metadata": {"name": "x", "namespace": "ns", "labels": labels}, "spec": {"replicas": 2}}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),  # != matches objects without the key
        ("app in (web, db)", {"app": "db"}, True),
        ("app notin (web,db)", {"app": "db"}, False),
        ("app notin (web,db)", {}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("!app", {}, True),
        ("app=web,tier in (front),!legacy", {"app": "web", "tier": "front"}, True),
        ("app=web,tier in (front),!legacy", {"app": "web", "tier": "front", "legacy": "1"}, False),
        ("example.com/team=core", {"example.com/team": "core"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), obj(**labels)) is expected


@pytest.mark.parametrize("selector", ["app=-bad-", "Bad Key=x", "app in (a b)"])
def test_malformed_label_selectors_are_bad_requests(selector: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse_label_selector(selector)
    assert raised.value.code == 400


def test_structured_selector_and_its_string_form() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
    }
    requirements = selector_from_label_selector_object(selector)
    assert labels_match(requirements, obj(app="web", tier="a"))
    assert not labels_match(requirements, obj(app="web", tier="c"))
    assert format_label_selector(selector) == "app=web,tier in (a,b)"


def test_field_selectors() -> None:
    assert fields_match(parse_field_selector("metadata.name=x,metadata.namespace=ns"), obj())
    assert not fields_match(parse_field_selector("metadata.name!=x"), obj())
    assert fields_match(parse_field_selector("spec.replicas=2"), obj())
    with pytest.raises(ApiError):
        parse_field_selector("metadata.name")
