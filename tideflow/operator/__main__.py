"""``python -m tideflow.operator``: run the operator with settings from ``TIDEFLOW_*`` variables."""

from __future__ import annotations

import asyncio
import logging

import kopf

from tideflow.operator import main as handlers
from tideflow.operator.settings import OperatorSettings


def run() -> None:
    config = OperatorSettings.from_env()
    logging.basicConfig(
        level=logging.INFO,
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":%(message)r}',
    )
    liveness = f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None
    assert handlers.startup is not None  # the handlers register on import
    asyncio.run(
        kopf.operator(
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=config.standalone,
            # Naming a peering makes it mandatory in kopf: without KopfPeering objects every watch
            # then stays paused. Only a non-standalone operator (with a standby replica) names one.
            peering_name=None if config.standalone else config.peering_name,
            liveness_endpoint=liveness,
        )
    )


run()
