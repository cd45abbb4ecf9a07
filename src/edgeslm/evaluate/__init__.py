"""Scoring: metrics as pure functions, and torch-free evaluation of bundles."""
