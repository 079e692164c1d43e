"""The errors of flowlik, one hierarchy mirroring the C++ library's kinds (include/flowlik/error.h). Messages are
the program's: they name the file, field or option at fault (options by the program's flag, ``--rtol``)."""


class Error(Exception):
    """Any error a caller can cause."""


class InvalidArgument(Error, ValueError):
    """An option value that cannot be used."""


class DataError(Error):
    """A data file could not be read, or does not fit the model."""


class ModelError(Error):
    """A model file could not be loaded, or breaks the model contract."""


class OutputError(Error):
    """A result file could not be written."""


class NoSampleScored(Error):
    """Every sample failed; there is no result to summarise."""


class IntegrationError(Error):
    """One solve failed."""


__all__ = ["Error", "InvalidArgument", "DataError", "ModelError", "OutputError", "NoSampleScored",
           "IntegrationError"]
