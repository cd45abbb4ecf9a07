"""The `edgeslm` command: a thin click layer over the library, one module per command group."""
