"""Unit tests of the workflow engine, its node executors and the SSRF guard."""
