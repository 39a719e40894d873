"""Tests of the Helm chart (charts/tideflow): rendered, linted and validated in-process, no cluster."""
