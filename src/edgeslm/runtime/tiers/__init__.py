"""The tiered assistant: each command is answered by the cheapest part of the device that gets it right."""
