"""User-facing errors.

A `NeuralframeError` is a problem with what the user asked for (a missing file, a bad option value,
a webcam that does not open). The CLI prints its message as one line and exits with code 2, without a
traceback. Anything else is a bug and keeps its traceback.
"""


class NeuralframeError(Exception):
    """A user error: the message says what is wrong and what to do."""

    exit_code = 2


class InputError(NeuralframeError):
    """An input (file, folder, device, frame) is missing, empty, corrupt or of the wrong shape."""


class OutputError(NeuralframeError):
    """An output path cannot be written."""


class MissingDependencyError(NeuralframeError):
    """An optional package or device that the request needs is not available."""


class PipelineError(NeuralframeError):
    """A pipeline stage failed; the message names the stage."""

    def __init__(self, stage: str, error: BaseException):
        self.stage = stage
        self.error = error
        super().__init__(f"stage '{stage}' failed: {_describe(error)}")


def _describe(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, NeuralframeError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
