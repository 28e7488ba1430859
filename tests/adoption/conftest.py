"""`downstream/` and `django_shop/` are other projects' sources, each copied out and run in a virtual
environment of its own; this suite must not collect their tests (one of each fails on purpose)."""

collect_ignore = ["downstream", "django_shop"]
