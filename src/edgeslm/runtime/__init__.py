"""Device side: serve bundles. Imports neither torch nor transformers (tests enforce it)."""
