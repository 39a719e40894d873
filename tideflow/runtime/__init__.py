"""The workflow runtime: the engine that executes a workflow graph, its node executors and the SSRF guard.

``tideflow.runtime.engine`` runs a definition for one trigger (pure asyncio, no Kubernetes and no HTTP
server); ``tideflow.runtime.nodes`` holds one executor per node type of ``tideflow.core.catalog``;
``tideflow.runtime.ssrf`` keeps HTTP nodes away from internal addresses.
"""
