"""ragctl: the command line. Wires the library packages together; the only click importer."""
