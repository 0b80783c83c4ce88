"""Core specs: one module per core, each exporting ``SPECS``."""
