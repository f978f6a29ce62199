"""The one exception type users can cause.

Every error a user can trigger (unknown space or score, malformed spec, missing file, bad storage
URL, a model the kernel engine cannot handle) is raised as :class:`NasntkError` with a message
written for them. The CLI turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations


class NasntkError(Exception):
    """A problem the user can fix; ``str(err)`` is a one-line message for them."""
