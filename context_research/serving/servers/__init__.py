"""Servers the harness starts and stops (`vllm serve`, `transformers serve`): their command lines and
the process that runs them (process.py). The engines that talk to them are serving/backends/managed.py."""
