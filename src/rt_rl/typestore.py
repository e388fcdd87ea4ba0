"""rt_rl's rosbags typestore: ROS 2 Kilted's types plus rt_rl_interfaces, for writing and reading bags."""

from __future__ import annotations

import sys
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from rosbags.typesys import Stores, get_types_from_msg, get_typestore


def rt_rl_typestore(recorded: dict | None = None):
    """ROS 2 Kilted's types plus rt_rl_interfaces, read from the installed .msg files; `recorded`
    (parsed definitions a bag stores) takes precedence for the types it holds."""
    store = get_typestore(Stores.ROS2_KILTED)
    recorded = recorded or {}
    if recorded:
        store.register(recorded)
    try:
        share = Path(get_package_share_directory("rt_rl_interfaces")) / "msg"
    except (OSError, LookupError, ValueError):  # a venv install has no AMENT_PREFIX_PATH
        share = Path(sys.prefix) / "share" / "rt_rl_interfaces" / "msg"
    types = {}
    for msg in sorted(share.glob("*.msg")):
        types.update(get_types_from_msg(msg.read_text(), f"rt_rl_interfaces/msg/{msg.stem}"))
    store.register({k: v for k, v in types.items() if k not in recorded})
    return store
