"""Resource names everyone must derive the same way: run names, idempotent run names, random suffixes.

The API and the runtime both create WorkflowRuns. Deterministic names are how invariant 2 (no
duplicates) holds across processes: the same (workflow, idempotency key) always gives the same name,
so a second create is a 409 on that name, wherever the request arrived.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

__all__ = ["NAME_ALPHABET", "idempotent_run_name", "random_run_name", "random_suffix"]

NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
"""What Kubernetes uses for ``generateName`` suffixes: no vowels, so no words, no look-alike digits."""


def random_suffix(length: int = 8) -> str:
    """``length`` random characters of :data:`NAME_ALPHABET`."""
    return "".join(secrets.choice(NAME_ALPHABET) for _ in range(length))


def random_run_name(workflow: str) -> str:
    """``<workflow>-<8 random characters>``, like ``generateName`` would give."""
    return f"{workflow}-{random_suffix()}"


def idempotent_run_name(workflow: str, key: str) -> str:
    """The run name for an idempotency key: the same (workflow, key) always gives the same name.

    Whoever creates runs with a key (the API, the runtime) must use this function, so that a repeated
    request, wherever it arrives, is a conflict on the same name.
    """
    digest = hashlib.sha256(f"{workflow}\x00{key}".encode()).hexdigest()[:16]
    return f"{workflow}-{digest}"
