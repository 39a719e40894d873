"""Webhook routes and their authentication: a bearer token, or an HMAC signature with a replay window.

Each ``webhook_trigger`` node serves ``/webhooks/<path>`` (its ``config.path``, else its node id) for
its ``config.method`` (any method when unset). Trigger configs keep unknown keys, and ``config.auth``
says how a request proves it may start a run; the secret always comes from a Secret of the workflow's
namespace (``secretRef``), exposed to the runtime as an environment variable like every node secret:

```yaml
config:
  path: orders
  method: POST
  auth: {type: bearer, secretRef: {name: hooks, key: token}}      # Authorization: Bearer <token>
  # or
  auth:
    type: hmac
    secretRef: {name: hooks, key: signing-key}
    algorithm: sha256                         # sha256 (default) or sha512
    signatureHeader: X-Tideflow-Signature     # "sha256=<hex>" (or the bare hex digest)
    timestampHeader: X-Tideflow-Timestamp     # Unix time in seconds
    toleranceSeconds: 300                     # the replay window, 1..3600
```

The HMAC is computed over ``<timestamp>.<raw body>`` with the secret as key. A request is refused when
its timestamp is more than ``toleranceSeconds`` away from the runtime's clock, and when the same
signature was already accepted within the window (a replay): each replica remembers the signatures it
accepted for as long as the window lasts, so across replicas the window is what bounds a replay. All
comparisons are constant-time. A webhook without ``auth`` is open (the API in front may still
authenticate it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tideflow.core.models import WorkflowDefinition
from tideflow.runtime.nodes.base import SecretNotFoundError, SecretResolver

__all__ = [
    "DEFAULT_SIGNATURE_HEADER",
    "DEFAULT_TIMESTAMP_HEADER",
    "DEFAULT_TOLERANCE_SECONDS",
    "ReplayCache",
    "WebhookAuth",
    "WebhookAuthError",
    "WebhookConfigError",
    "WebhookRoute",
    "WebhookVerifier",
    "normalize_path",
    "sign",
    "webhook_routes",
]

DEFAULT_SIGNATURE_HEADER: Final = "X-Tideflow-Signature"
DEFAULT_TIMESTAMP_HEADER: Final = "X-Tideflow-Timestamp"
DEFAULT_TOLERANCE_SECONDS: Final = 300
MAX_TOLERANCE_SECONDS: Final = 3600
ALGORITHMS: Final = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


class WebhookConfigError(ValueError):
    """A ``webhook_trigger`` config the runtime cannot serve (the message names the node)."""


class WebhookAuthError(Exception):
    """A request that does not authenticate; ``status`` is 401, or 500 when the secret is missing."""

    def __init__(self, status: int, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    """How one webhook authenticates requests."""

    type: str
    """``bearer`` or ``hmac``."""
    secret_name: str
    secret_key: str
    algorithm: str = "sha256"
    signature_header: str = DEFAULT_SIGNATURE_HEADER
    timestamp_header: str = DEFAULT_TIMESTAMP_HEADER
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS

    @classmethod
    def from_config(cls, auth: Any, where: str) -> WebhookAuth:
        """Read ``config.auth``; :class:`WebhookConfigError` when it is malformed."""
        if not isinstance(auth, Mapping):
            raise WebhookConfigError(f"{where}.auth must be an object")
        kind = auth.get("type")
        ref = auth.get("secretRef")
        if kind not in ("bearer", "hmac"):
            raise WebhookConfigError(f"{where}.auth.type must be bearer or hmac")
        if not (
            isinstance(ref, Mapping)
            and isinstance(ref.get("name"), str)
            and isinstance(ref.get("key"), str)
            and ref["name"]
            and ref["key"]
        ):
            raise WebhookConfigError(f"{where}.auth.secretRef must be {{name, key}} of a Secret")
        if kind == "bearer":
            return cls("bearer", ref["name"], ref["key"])
        algorithm = auth.get("algorithm", "sha256")
        if algorithm not in ALGORITHMS:
            raise WebhookConfigError(f"{where}.auth.algorithm must be one of {', '.join(ALGORITHMS)}")
        tolerance = auth.get("toleranceSeconds", DEFAULT_TOLERANCE_SECONDS)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 1 <= tolerance <= 3600:
            raise WebhookConfigError(f"{where}.auth.toleranceSeconds must be an integer in 1..3600")
        headers = {}
        for key, default in (
            ("signatureHeader", DEFAULT_SIGNATURE_HEADER),
            ("timestampHeader", DEFAULT_TIMESTAMP_HEADER),
        ):
            value = auth.get(key, default)
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,128}", value):
                raise WebhookConfigError(f"{where}.auth.{key} must be a header name")
            headers[key] = value
        return cls(
            "hmac",
            ref["name"],
            ref["key"],
            algorithm=algorithm,
            signature_header=headers["signatureHeader"],
            timestamp_header=headers["timestampHeader"],
            tolerance_seconds=tolerance,
        )


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """One webhook: the node it belongs to, its path, accepted method and authentication."""

    node_id: str
    path: str
    method: str | None
    auth: WebhookAuth | None


def normalize_path(path: str) -> str:
    """``/orders/new/`` and ``orders/new`` are the same webhook: no leading or trailing slash."""
    return path.strip().strip("/")


def webhook_routes(definition: WorkflowDefinition) -> dict[str, WebhookRoute]:
    """Every webhook of a definition by normalized path; :class:`WebhookConfigError` on a bad config."""
    routes: dict[str, WebhookRoute] = {}
    for index, node in enumerate(definition.nodes):
        if node.type != "webhook_trigger":
            continue
        where = f"spec.nodes[{index}].config"
        raw_path = node.config.get("path") or node.id
        if not isinstance(raw_path, str):
            raise WebhookConfigError(f"{where}.path must be a string")
        path = normalize_path(raw_path)
        segments = path.split("/")
        if not path or not all(_PATH_SEGMENT.match(seg) and seg not in (".", "..") for seg in segments):
            raise WebhookConfigError(
                f"{where}.path {raw_path!r} must be '/'-separated segments of letters, digits and ._~-"
            )
        method = node.config.get("method")
        if method is not None and not isinstance(method, str):
            raise WebhookConfigError(f"{where}.method must be a string")
        raw_auth = node.config.get("auth")
        auth = None if raw_auth is None else WebhookAuth.from_config(raw_auth, where)
        if path in routes:
            other = routes[path].node_id
            raise WebhookConfigError(f"{where}.path {path!r} is already used by node {other!r}")
        routes[path] = WebhookRoute(node.id, path, method.upper() if method else None, auth)
    return routes


def sign(secret: str | bytes, timestamp: int | str, body: bytes, algorithm: str = "sha256") -> str:
    """The signature header value a sender computes: ``<algorithm>=<hex HMAC of "<timestamp>.<body>">``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, ALGORITHMS[algorithm]).hexdigest()
    return f"{algorithm}={digest}"


class ReplayCache:
    """Signatures accepted within the replay window, each kept until its timestamp leaves the window."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check_and_add(self, signature: str, expires_at: float, now: float) -> bool:
        """``False`` when ``signature`` was already seen (a replay); else remember it and return ``True``."""
        while self._seen:
            oldest_key, oldest_expiry = next(iter(self._seen.items()))
            if oldest_expiry > now and len(self._seen) < self.max_entries:
                break
            del self._seen[oldest_key]
        expiry = self._seen.get(signature)
        if expiry is not None and expiry > now:
            return False
        self._seen[signature] = expires_at
        # Entries expire in insertion order only approximately; sort the newest to its place lazily.
        self._seen.move_to_end(signature)
        return True


class WebhookVerifier:
    """Checks requests against a route's :class:`WebhookAuth`; raises :class:`WebhookAuthError`."""

    def __init__(
        self,
        secrets: SecretResolver,
        *,
        now: Callable[[], float] = time.time,
        replays: ReplayCache | None = None,
    ) -> None:
        self._secrets = secrets
        self._now = now
        self._replays = replays or ReplayCache()

    async def _secret(self, auth: WebhookAuth) -> str:
        try:
            return await self._secrets(auth.secret_name, auth.secret_key)
        except SecretNotFoundError:
            raise WebhookAuthError(500, "the webhook's authentication secret is not available") from None

    async def verify(self, auth: WebhookAuth | None, headers: Mapping[str, str], body: bytes) -> None:
        """Accept or refuse one request; ``headers`` must look names up case-insensitively."""
        if auth is None:
            return
        if auth.type == "bearer":
            await self._verify_bearer(auth, headers)
        else:
            await self._verify_hmac(auth, headers, body)

    async def _verify_bearer(self, auth: WebhookAuth, headers: Mapping[str, str]) -> None:
        value = headers.get("authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise WebhookAuthError(401, "a bearer token is required", challenge="Bearer")
        expected = await self._secret(auth)
        if not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise WebhookAuthError(401, "invalid bearer token", challenge='Bearer error="invalid_token"')

    async def _verify_hmac(self, auth: WebhookAuth, headers: Mapping[str, str], body: bytes) -> None:
        signature = (headers.get(auth.signature_header) or "").strip()
        stamp = (headers.get(auth.timestamp_header) or "").strip()
        if not signature or not stamp:
            raise WebhookAuthError(
                401, f"the {auth.signature_header} and {auth.timestamp_header} headers are required"
            )
        if not re.fullmatch(r"[0-9]{1,12}", stamp):
            raise WebhookAuthError(401, f"{auth.timestamp_header} must be a Unix time in seconds")
        now = self._now()
        if abs(now - int(stamp)) > auth.tolerance_seconds:
            raise WebhookAuthError(
                401, f"the request timestamp is outside the {auth.tolerance_seconds}s replay window"
            )
        given = signature.removeprefix(f"{auth.algorithm}=").lower()
        expected = sign(await self._secret(auth), stamp, body, auth.algorithm).partition("=")[2]
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookAuthError(401, "invalid signature")
        if not self._replays.check_and_add(expected, int(stamp) + auth.tolerance_seconds, now):
            raise WebhookAuthError(401, "replayed request: this signature was already accepted")
