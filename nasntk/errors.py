"""The one exception type users can cause, and the one-line form of any error message.

Every error a user can trigger (unknown space or score, malformed spec, missing file, bad storage
URL, a model the kernel engine cannot handle) is raised as :class:`NasntkError` with a message
written for them. The CLI turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations


class NasntkError(Exception):
    """A problem the user can fix; ``str(err)`` is a one-line message for them."""


class DatabaseUnavailable(BaseException):
    """The study's database stayed unreachable for the whole patience; ``str()`` is one line
    (the CLI prints it like a :class:`NasntkError`, exit code 2).

    A ``BaseException``, like ``KeyboardInterrupt``: it stops the search and no handler of a
    candidate's failure records it as the candidate's fault. Raised by
    :class:`nasntk.study.storage.RetryPolicy`.
    """


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``str(exc)`` on one line (whitespace collapsed), at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
