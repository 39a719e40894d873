"""``python -m tideflow.api``: serve the REST API with settings from ``TIDEFLOW_*`` variables.

Also ``python -m tideflow.api create-key --org ORG --user USER --scopes workflows:read,...``: store a
new API key in the cluster (the kubeconfig's or the pod's service account) and print it once.
Exit status 2 means the settings or arguments are unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvicorn

from tideflow.api.app import create_app
from tideflow.api.keys import Scope, key_secret, new_key
from tideflow.api.settings import ApiSettings, SettingsError
from tideflow.core.kube import SECRETS, KubeClient


async def _create_key(org: str, user: str, scopes: frozenset[Scope]) -> str:
    key_id, key = new_key(org)
    async with KubeClient.from_environment() as kube:
        await kube.create(SECRETS, org, key_secret(key_id, key, user=user, scopes=scopes))
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tideflow.api", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    create = commands.add_parser("create-key", help="store a new API key and print it once")
    create.add_argument("--org", required=True, help="the organization (namespace)")
    create.add_argument("--user", required=True, help="who the key acts as")
    create.add_argument("--scopes", default="workflows:read,workflows:write,workflows:execute")
    args = parser.parse_args(argv)
    if args.command == "create-key":
        try:
            scopes = frozenset(Scope(s.strip()) for s in args.scopes.split(",") if s.strip())
        except ValueError as exc:
            print(f"tideflow-api: {exc}; scopes are {', '.join(s.value for s in Scope)}", file=sys.stderr)
            return 2
        print(asyncio.run(_create_key(args.org, args.user, scopes)))
        return 0
    try:
        settings = ApiSettings.from_env()
    except SettingsError as exc:
        print(f"tideflow-api: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
