"""A run's params.yaml (the ROS 2 params file `rt-rl launch` writes next to its bag), as the offline
readers (`rt-rl report`, `rt-rl dataset`) need it: parsed, one node's values, the recorder's topic names."""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from rt_rl.graph import TOPICS


def parse_params(text: str) -> dict:
    try:
        params = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        return {}
    return params if isinstance(params, dict) else {}


def node_params(params: dict, node: str) -> dict:
    """A node's parameters from a ROS 2 params file: the '/**' section overlaid with the node's own."""
    out: dict = {}
    for section in ("/**", node):
        values = (params.get(section) or {}).get("ros__parameters") if isinstance(params, dict) else None
        if isinstance(values, dict):
            out.update(values)
    return out


def recorded_topics(params: dict, keys: Iterable[str]) -> dict[str, str]:
    """The names the recorder recorded the topics `keys` (graph.TOPICS keys) under (its `<key>_topic`
    parameters)."""
    recorder = node_params(params, "bag_recorder")
    return {key: str(recorder.get(TOPICS[key].param) or TOPICS[key].default) for key in keys}
