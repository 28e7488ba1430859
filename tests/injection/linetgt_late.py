"""A target module imported only while a tracer is installed (code first seen at run time)."""


def late(x: int) -> int:
    y = x * 3  # @late-1
    return y + 1  # @late-2
