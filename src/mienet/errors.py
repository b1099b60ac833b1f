"""Errors a user can act on: printed without a traceback by the CLI."""


class MienetError(Exception):
    """Bad input or configuration; the message says what, where and what to do."""
