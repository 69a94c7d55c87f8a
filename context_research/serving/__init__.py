"""Serving: engines (backends) and the schedulers that route requests over their pools."""
