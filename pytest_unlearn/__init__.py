"""pytest-unlearn."""
