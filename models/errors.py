"""The two errors the command line turns into exit statuses (2 and 3)."""

__all__ = ["ConfigError", "NonFiniteLossError", "UserError", "check_training_settings"]


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


def check_training_settings(cfg, non_negative, positive):
    """Raise ConfigError for the first bad setting of a training config: the fields named in
    `non_negative` must be >= 0, those in `positive` > 0, and 0 <= min_lr <= lr with lr > 0
    (the learning-rate schedule every training loop here uses)."""
    for name in non_negative:
        if getattr(cfg, name) < 0:
            raise ConfigError(name, f"must be >= 0, got {getattr(cfg, name)}")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(name, f"must be positive, got {getattr(cfg, name)}")
    if not cfg.lr > 0:
        raise ConfigError("lr", f"must be > 0, got {cfg.lr}")
    if not 0 <= cfg.min_lr <= cfg.lr:
        raise ConfigError("min_lr", f"must be in [0, lr={cfg.lr}], got {cfg.min_lr}")
