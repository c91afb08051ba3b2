"""The one exception type for bad input: the CLI prints its message and exits with code 2."""
from __future__ import annotations


class EvozeroError(Exception):
    """Bad input from the user (a config, a program, a run directory, an argument).

    The message alone must tell the user what is wrong: the file, the key or line, the
    bad value and what is allowed.
    """


class InternalError(Exception):
    """A fault in evozero itself, not in the input (e.g. an exception in a worker's
    island): the message says where; the CLI prints it and exits with code 1."""
