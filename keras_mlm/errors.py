"""The one exception type the package raises for bad user input.

The CLI turns it into a one-line message and a non-zero exit code; library users can catch it.
"""


class UserInputError(ValueError):
    """Bad input a user can fix: the message names the file, field or value and what is allowed."""
