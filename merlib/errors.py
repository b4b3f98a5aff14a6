"""The one base class of every error a user can cause.

The command line catches `MerlibError` alone: each subclass's message names the file or the
config key at fault and says what to do, so it is printed as one line (exit status 2), not as a
traceback. Subclasses also derive from the built-in type they used to be (`ValueError`,
`FileNotFoundError`, ...), so code that caught those keeps working.
"""

from __future__ import annotations


class MerlibError(Exception):
    """An error the user can fix: bad input, a config mistake, a missing file."""


class DataNotFoundError(MerlibError, FileNotFoundError):
    """A corpus folder, manifest or model file that the config names is not there."""
