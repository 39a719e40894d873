"""One router per resource: workflows, deployment (lifecycle), executions, API keys, and health."""
