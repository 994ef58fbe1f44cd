"""The end-to-end demonstration: `make demo`."""
