"""A target helper module the job-like functions call."""


def double(i: int) -> int:
    return i * 2  # @double
