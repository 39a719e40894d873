"""Unit tests of the API's pure parts: ids, keys, authorization rules, settings, errors, rendering."""
