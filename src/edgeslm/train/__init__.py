"""Fine-tune an encoder with a classification head (build side: torch)."""
