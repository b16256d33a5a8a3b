"""Errors a user can cause: each carries a one-line fix and is shown without a traceback."""


class AigcError(Exception):
    """A user-facing error: ``message`` says what is wrong, ``fix`` how to fix it."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} {self.fix}".strip()

