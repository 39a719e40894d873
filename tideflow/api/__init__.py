"""The Tideflow REST API: a stateless FastAPI facade over the Workflow and WorkflowRun resources.

``create_app`` in :mod:`tideflow.api.app` builds the application; ``python -m tideflow.api`` serves it.
Every route reads and writes custom resources through the Kubernetes API, so a restart loses nothing.
"""
