"""The library's own exception types.

Every error a user can foresee (bad input, a dead server, a missing package)
is an `EnviroLLMError` with a one-line message that says what went wrong and
what to do; the CLI prints it without a traceback and exits with its code.
"""


class EnviroLLMError(Exception):
    """A foreseeable failure with a one-line, user-facing message."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class UsageError(EnviroLLMError):
    """Bad usage or bad input (exit code 2)."""

    exit_code = 2


class EngineError(UsageError):
    """The embedded engine could not be started (exit code 2)."""
