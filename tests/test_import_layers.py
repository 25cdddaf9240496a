"""bridge/'s folders keep their layout: no import circle, each package imports only the layers below it, aiokafka
only in bridge/kafka/ and ray only in bridge/executors/ray.py. The checker is proved on small made-up trees."""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import LAYERS, circles, graph, layer_breaks, problems

BRIDGE = Path(__file__).resolve().parents[1] / "bridge"


def _tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "bridge"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return package


def test_the_bridge_keeps_its_layout() -> None:
    assert problems(BRIDGE) == []


def test_every_package_of_the_bridge_has_its_layer() -> None:
    units = {u for layer in LAYERS for u in layer}
    packages = {f"bridge.{p.name}" for p in BRIDGE.iterdir() if (p / "__init__.py").exists()}
    top = {f"bridge.{p.stem}" for p in BRIDGE.glob("*.py") if p.stem != "__init__"}
    assert packages | top <= units


def test_an_import_circle_is_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "service/a.py": "from bridge.service.b import x\n",
            # Imported only for type checking, or inside a function: a circle all the same.
            "service/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bridge.service import c\n",
            "service/c.py": "def f():\n    from .a import y\n",
        },
    )
    assert circles(graph(root)) == [["bridge.service.a", "bridge.service.b", "bridge.service.c"]]
    assert problems(root) == [
        "import circle: bridge.service.a -> bridge.service.b -> bridge.service.c -> bridge.service.a"
    ]


def test_an_import_up_or_across_the_layers_is_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "engine/scheduler.py": "from bridge.service.registry import RunRegistry\n",
            "service/registry.py": "RunRegistry = object\n",
            "client/study.py": "from bridge.service import registry\n",
            "cli/main.py": "from bridge.engine import scheduler\n",  # down: allowed
        },
    )
    assert layer_breaks(graph(root)) == [
        "bridge.client.study imports bridge.service.registry: bridge.client may import only the layers below it,"
        " not bridge.service",
        "bridge.engine.scheduler imports bridge.service.registry: bridge.engine may import only the layers below"
        " it, not bridge.service",
    ]


def test_a_new_top_level_module_needs_a_layer(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"helpers.py": "import json\n"})
    assert problems(root) == ["bridge.helpers: in no layer of LAYERS"]


def test_aiokafka_outside_the_kafka_folder_and_ray_outside_its_executor_are_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "kafka/broker.py": "from aiokafka import AIOKafkaConsumer\n",
            "service/consume.py": "from aiokafka import ConsumerRecord\n",
            "client/client.py": "def f():\n    import aiokafka.admin\n",
            "executors/ray.py": "import ray\n",
            "executors/local.py": "from ray.util import placement_group\n",
        },
    )
    assert problems(root) == [
        "bridge.client.client imports aiokafka.admin: only bridge.kafka may import aiokafka",
        "bridge.executors.local imports ray.util: only bridge.executors.ray may import ray",
        "bridge.service.consume imports aiokafka: only bridge.kafka may import aiokafka",
    ]
