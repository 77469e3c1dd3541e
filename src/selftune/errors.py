"""The one exception type that means "the user asked for something that can't be done".

The CLI turns it into a one-line message and exit code 2; the API will turn it into a 400.
Anything else escaping is a bug in selftune, not a user mistake.
"""


class SelftuneError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""
