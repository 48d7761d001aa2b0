"""Developer tools, not part of the library API: `make demo` and `make eval`."""
