"""The public API's builders: the environment and the data streams (PyFlink's names)."""
