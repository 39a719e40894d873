"""The three PATCH formats: RFC 7386 merge patch, RFC 6902 JSON patch and strategic merge patch."""

from __future__ import annotations

import pytest

from tideflow.sandbox.errors import ApiError
from tideflow.sandbox.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
    json_merge_patch,
    strategic_merge_patch,
)


def test_merge_patch_follows_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "list": [3]}
    assert json_merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "list": [3]}
    assert target["c"] == {"d": "e", "f": "g"}  # the input is not modified


def test_json_patch_and_failed_test_is_422() -> None:
    target = {"metadata": {"resourceVersion": "5", "finalizers": ["a"]}}
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    assert apply_patch(target, ops, JSON_PATCH, strategic_allowed=False) == {
        "metadata": {"resourceVersion": "5", "finalizers": []}
    }
    with pytest.raises(ApiError) as raised:
        apply_patch(
            target,
            [{"op": "test", "path": "/metadata/resourceVersion", "value": "4"}],
            JSON_PATCH,
            strategic_allowed=False,
        )
    assert raised.value.code == 422


def test_strategic_merge_merges_containers_by_name_and_honours_directives() -> None:
    target = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y"},
            ],
            "finalizers": ["one"],
        }
    }
    patch = {
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "L", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "z"},
            ],
            "finalizers": ["two"],
        }
    }
    result = strategic_merge_patch(target, patch)
    assert result["spec"]["containers"] == [
        {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}]},
        {"name": "c", "image": "z"},
    ]
    assert result["spec"]["finalizers"] == ["one", "two"]
    replaced = strategic_merge_patch({"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "c": 3}})
    assert replaced == {"spec": {"c": 3}}


def test_unknown_patch_type_and_strategic_on_custom_resources_are_415() -> None:
    for content_type, allowed in (("application/xml", True), (STRATEGIC_MERGE_PATCH, False)):
        with pytest.raises(ApiError) as raised:
            apply_patch({}, {}, content_type, strategic_allowed=allowed)
        assert raised.value.code == 415
    assert apply_patch({"a": 1}, {"b": 2}, f"{MERGE_PATCH}; charset=utf-8", strategic_allowed=False) == {
        "a": 1,
        "b": 2,
    }
