"""The package's errors: each is reported on the command line as one ``error:`` line with exit code 2."""


class GenNiError(Exception):
    """An error the command line reports as one ``error:`` line (exit code 2), with no traceback."""


class GenNiConfigError(GenNiError, ValueError):
    """Bad configuration or data, raised before training starts; the message names the key and the fix."""


class CheckpointWriteError(GenNiError, OSError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one is kept whole."""


class TrainingDivergedError(GenNiError, ValueError):
    """The training loss became NaN; the last validated epoch's checkpoint is kept."""
