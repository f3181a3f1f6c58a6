"""Errors a user can fix: one sentence naming the file and the fix; the CLI exits with code 2."""


class UserError(Exception):
    """A problem with the user's data or options, explained in one sentence with its fix."""

    exit_code = 2
