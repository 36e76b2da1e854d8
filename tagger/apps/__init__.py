"""The ways in: the plugin entry, the command line, the worker service, doctor, packaging."""
