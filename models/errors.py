"""The two errors the command line turns into exit statuses (2 and 3)."""

__all__ = ["ConfigError", "NonFiniteLossError", "UserError"]


class UserError(ValueError):
    """A problem with what the user asked for (a missing, unreadable or mixed-up corpus or
    checkpoint, a bad setting): the command line prints it as one line and exits with
    status 2."""


class ConfigError(UserError):
    """A bad value in a config dataclass. The message names the field (`max_iters must be
    >= 0, got -1`); `field` holds its name, so the command line can name the flag instead."""

    def __init__(self, field, message):
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


class NonFiniteLossError(RuntimeError):
    """The loss (or the weights) became NaN or infinite: training stopped without saving the
    bad state, so the last good checkpoint is intact; the command line exits with status 3."""
