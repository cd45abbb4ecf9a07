"""Jobs that chain the steps (train -> export -> evaluate -> report)."""
