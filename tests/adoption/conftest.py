"""`downstream/` is another project's source, copied out and run in its own virtual environment; this
suite must not collect its tests (one of them fails on purpose)."""

collect_ignore = ["downstream"]
