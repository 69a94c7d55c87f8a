"""Capability tasks: LongBench v1, RULER and PG19 perplexity, scored with their official metrics."""
