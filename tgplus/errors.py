"""The one exception family of tgplus.

Every message is a single line that says what was wrong and what to do about
it. The CLI prints it and exits with code 2; the API answers with a 4xx (or
503 when the model itself is unusable).
"""


class TgplusError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class DataError(TgplusError):
    """An input file cannot be read, or holds no usable movies."""


class ModelError(TgplusError):
    """A model file is missing, corrupt, incompatible, or cannot be trained."""


class InputError(TgplusError):
    """A description or request to predict on is unusable (empty, too long)."""


class StoreError(TgplusError):
    """The feedback database cannot be reached, read or written (the API answers 503)."""
