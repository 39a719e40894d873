"""The Tideflow operator: kopf handlers (``main``) over pure builders, lifecycle and planning logic."""
