"""Unit tests of tideflow.core: the resource models, the generated CRDs and the examples."""
