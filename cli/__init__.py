"""The ``nasntk`` command-line interface (installed as ``nasntk.cli``)."""
