"""`edgeslm serve`: bundles behind an HTTP API, within a device profile's budget."""
