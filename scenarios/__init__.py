"""The executable book: an example shop and one test module per lesson about retry-safe jobs."""
