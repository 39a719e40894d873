"""Integration tests of the REST API: the real API, operator and runtime processes on the sandbox."""
