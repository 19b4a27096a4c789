"""One error hierarchy: every message names the file, key, formula or row at fault."""


class MinerError(Exception):
    """Base of every error the user is meant to read (printed as one line by the CLI)."""


class ConfigError(MinerError):
    """A malformed experiment config: names the file and the key."""


class DataError(MinerError):
    """Market data that cannot be used as given: names the file, column or row."""


class FormulaError(MinerError):
    """A formula that cannot be parsed or evaluated: names the offending text."""


class LibraryError(MinerError):
    """A factor-library operation that cannot be carried out."""
