"""The error an external checkpoint is refused with: it names the file or hub id and what is wrong."""


class CheckpointError(ValueError):
    pass
