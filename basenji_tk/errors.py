"""Errors raised on bad user input.

Library code raises :class:`InputError` with a one-line message that names the
file, the line or key, and what was expected. The scripts in ``bin/`` turn it
into ``error: <message>`` on stderr and exit status 2 (see :mod:`basenji_tk.cli`).
"""


class InputError(Exception):
    """Bad input from the user: a file, a table row, a params key, an option."""

    def __init__(self, message: str):
        # Keep the promise of one line: fold any newline a caller let through.
        super().__init__(" ".join(str(message).split("\n")))


def where(path, line=None) -> str:
    """Format ``path`` or ``path:line`` for error messages."""
    return f"{path}:{line}" if line is not None else f"{path}"
