"""Integration tests of the runtime: real runtime processes against the sandbox cluster."""
