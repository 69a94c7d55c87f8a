"""Benchmarks: systems (latency, throughput, memory) and capability tasks, one BenchmarkTask each."""
