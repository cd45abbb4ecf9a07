"""Compression: recipes of modifiers (quantize, prune, distill) applied under an accuracy guard."""
