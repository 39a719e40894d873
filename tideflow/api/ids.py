"""Public ids and resource names, one-to-one: ``wf_<name>`` is the Workflow ``<name>``.

An execution id is ``exec_<name>`` of its WorkflowRun. The mapping is a bijection (a Kubernetes name
never holds ``_``), so a Workflow created with ``kubectl apply`` has an id too, and an id never needs
a lookup table. A new workflow's name is a slug of its display name and a random suffix, so
``kubectl get wf`` stays readable.
"""

from __future__ import annotations

import re
from typing import Final

from tideflow.api.errors import ApiError
from tideflow.core.naming import random_suffix

__all__ = ["execution_id", "new_workflow_name", "run_name", "workflow_id", "workflow_name"]

WORKFLOW_PREFIX: Final = "wf_"
EXECUTION_PREFIX: Final = "exec_"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SLUG_LENGTH: Final = 40


def workflow_id(name: str) -> str:
    return WORKFLOW_PREFIX + name


def execution_id(name: str) -> str:
    return EXECUTION_PREFIX + name


def _name(public: str, prefix: str, what: str, max_length: int) -> str:
    name = public[len(prefix) :] if public.startswith(prefix) else ""
    if not name or len(name) > max_length or not _NAME.match(name):
        raise ApiError(404, f"no {what} {public!r}: ids look like {prefix}<name>")
    return name


def workflow_name(public: str) -> str:
    """The Workflow name of an id; 404 for anything that cannot be one."""
    return _name(public, WORKFLOW_PREFIX, "workflow", 63)


def run_name(public: str) -> str:
    """The WorkflowRun name of an execution id; 404 for anything that cannot be one."""
    return _name(public, EXECUTION_PREFIX, "execution", 253)


def new_workflow_name(display_name: str) -> str:
    """``<slug of the display name>-<5 random characters>``, a valid name of at most 46 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")[:_SLUG_LENGTH].strip("-")
    return f"{slug or 'workflow'}-{random_suffix(5)}"
