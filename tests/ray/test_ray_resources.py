"""A container's Kubernetes-style `resources` as Ray placement options (pure: no cluster)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="pip install 'suggestion-bridge[ray]'")

from bridge.errors import ConfigError
from bridge.executors.ray import ray_options


def test_requests_map_to_cpus_memory_gpus_and_custom_resources() -> None:
    resources = {
        "requests": {"cpu": "1500m", "memory": "2Gi", "ray.io/n1": 1},
        "limits": {"nvidia.com/gpu": 1, "cpu": 4},
    }
    assert ray_options(resources) == {
        "num_cpus": 1.5,
        "memory": 2 * 2**30,
        "num_gpus": 1.0,
        "resources": {"n1": 1.0},
    }


def test_a_run_asking_nothing_takes_one_cpu() -> None:
    assert ray_options(None) == {"num_cpus": 1.0}


def test_a_quantity_that_is_not_one_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="memory 'lots'"):
        ray_options({"requests": {"memory": "lots"}})
