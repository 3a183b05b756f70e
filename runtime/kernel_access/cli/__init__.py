"""The ``kernel-access`` command-line tool."""
