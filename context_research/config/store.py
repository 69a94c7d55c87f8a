"""Registers every schema in Hydra's ConfigStore under `schema/`.

Each YAML option extends its schema with `- /schema/<name>@_here_`, so Hydra checks types at
composition time, and `validation.validate` runs the range and cross-field rules.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from context_research.config.benchmark import LatencyBenchmarkConfig, ThroughputBenchmarkConfig
from context_research.config.capability import LongBenchConfig, PG19Config, RulerConfig
from context_research.config.collectors import (ClientHealthCollectorConfig, GpuCollectorConfig,
                                                KVTransferCollectorConfig, LatencyCollectorConfig,
                                                MemoryCollectorConfig, ServerMetricsCollectorConfig)
from context_research.config.hardware import HardwareConfig
from context_research.config.job import JobConfig, PathsConfig
from context_research.config.model import ModelConfig
from context_research.config.scheduler import AggregatedSchedulerConfig, DisaggregatedSchedulerConfig
from context_research.config.serving import (HFServingConfig, OpenAIServingConfig, TransformersServerConfig,
                                             VLLMServerConfig, VLLMServingConfig)

SCHEMAS = {
    "job": JobConfig,
    "model": ModelConfig,
    "serving_hf": HFServingConfig,
    "serving_vllm": VLLMServingConfig,
    "serving_openai": OpenAIServingConfig,
    "serving_vllm_server": VLLMServerConfig,
    "serving_transformers_server": TransformersServerConfig,
    "scheduler_aggregated": AggregatedSchedulerConfig,
    "scheduler_disaggregated": DisaggregatedSchedulerConfig,
    "benchmark_latency": LatencyBenchmarkConfig,
    "benchmark_throughput": ThroughputBenchmarkConfig,
    "benchmark_longbench": LongBenchConfig,
    "benchmark_ruler": RulerConfig,
    "benchmark_pg19": PG19Config,
    "collector_latency": LatencyCollectorConfig,
    "collector_gpu": GpuCollectorConfig,
    "collector_memory": MemoryCollectorConfig,
    "collector_kv_transfer": KVTransferCollectorConfig,
    "collector_server": ServerMetricsCollectorConfig,
    "collector_client": ClientHealthCollectorConfig,
    "hardware": HardwareConfig,
    "paths": PathsConfig,
}


def register_schemas() -> None:
    """Put every schema into the ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(group="schema", name=name, node=node)
