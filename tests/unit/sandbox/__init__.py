"""Unit tests of the sandbox cluster's pure modules (no server, no processes)."""
