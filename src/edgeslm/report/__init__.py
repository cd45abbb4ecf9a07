"""Reports a person reads: markdown tables and plots."""
