"""Integration tests of schedules: exactly-once firing under operator chaos, overlap policies, waking."""
