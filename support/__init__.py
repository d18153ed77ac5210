"""Helpers for running the project headless (tests, benchmarks, docs scripts); not part of the product."""
