"""``python -m tideflow.runtime``: run one workflow's trigger server with settings from the environment.

This is the runtime container's command (the operator's Deployment). It reads
:class:`~tideflow.runtime.settings.RuntimeSettings` from ``TIDEFLOW_*`` variables, connects to the API
server (in-cluster service account, or ``KUBECONFIG``), serves on ``POD_IP:TIDEFLOW_PORT`` and drains
on SIGTERM. Exit status 2 means the settings are unusable.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from tideflow.runtime.server import serve
from tideflow.runtime.settings import RuntimeSettings, SettingsError


def main() -> int:
    try:
        settings = RuntimeSettings.from_env()
    except SettingsError as exc:
        print(f"tideflow-runtime: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
