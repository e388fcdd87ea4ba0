"""Who can find the graph over DDS: this host only by default, a LAN when the params file says so.

The switch is graph-wide, in the params file's `/**` section (the launch file's `discovery_range:=` and
`static_peers:=` arguments override it):

    /**:
      ros__parameters:
        discovery_range: subnet          # localhost (default) | subnet
        static_peers: "10.0.0.7;gpu-box" # optional: hosts to reach beyond automatic discovery

A user's environment wins: `ROS_AUTOMATIC_DISCOVERY_RANGE` already set is used as it is (and the
launcher says so), `ROS_STATIC_PEERS` already set replaces the file's `static_peers`.

Why `localhost` is not simply `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` (measured here, Kilted wheels,
rmw_fastrtps, Fast DDS 3.2, two network namespaces joined by a veth pair): rmw_fastrtps's LOCALHOST
stops announcing the participant beyond this host (no multicast; initial peer 127.0.0.1), but its
transports still listen on every interface (`ss -uln`: 0.0.0.0:<discovery ports>), so a process on
another host that names this one (`ROS_STATIC_PEERS=<this host>`) discovers the graph and receives its
commands. It also appends its own shared-memory and UDP transports to those of the project's realtime
XML profile (a second SHM transport per participant). The private default is therefore done in the
Fast DDS XML (`dds/fast_localhost.xml`, `dds/fast_realtime_localhost.xml`): UDP restricted to the
loopback interface (interface allowlist 127.0.0.1), discovery on 127.0.0.1 only (unicast locator and
initial peer), no multicast, shared memory for data; every socket is bound to 127.0.0.1. With the range
set to SYSTEM_DEFAULT rmw leaves that profile alone. Such a participant still finds and is found by
every other ROS 2 process on this host, whatever their range (`ros2 topic echo`, rclpy scripts, tests).

Where the project's loopback profile cannot be used (the user chose a Fast DDS profile, or
`FASTDDS_BUILTIN_TRANSPORTS`, or `static_peers` with `localhost`), the standard LOCALHOST range is set:
not announced beyond this host, but reachable by a host that names it.

Pure: no ROS, no I/O; `rt_rl.graph.node_environment` applies the choice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RANGE_ENV = "ROS_AUTOMATIC_DISCOVERY_RANGE"
PEERS_ENV = "ROS_STATIC_PEERS"
RANGES = ("localhost", "subnet")
DEFAULT_RANGE = "localhost"
RANGE_KEY, PEERS_KEY = "discovery_range", "static_peers"  # in the params file's `/**` section
KNOWN_ENV_RANGES = ("OFF", "LOCALHOST", "SUBNET", "SYSTEM_DEFAULT")
_PEER = re.compile(r"^[A-Za-z0-9._:\-\[\]]+$")  # a host name, IPv4 or IPv6 address; no spaces


class DiscoveryError(ValueError):
    """A discovery setting that makes no sense (one line)."""


@dataclass(frozen=True)
class Discovery:
    """What the graph runs with.

    `env`: the variables to add to the nodes' environment; `loopback_only`: use the project's
    loopback-only Fast DDS profile; `range`: the effective range (LOCALHOST, SUBNET, ... or
    `loopback` for the project's profile); `source`: where it came from (default, params, environment);
    `note`: one line for the launcher to print."""

    range: str
    loopback_only: bool
    source: str
    note: str
    env: dict[str, str] = field(default_factory=dict)
    static_peers: tuple[str, ...] = ()

    @property
    def private(self) -> bool:
        """Not reachable from another host (only the loopback profile promises that)."""
        return self.loopback_only


def parse_peers(value: Any) -> tuple[str, ...]:
    """`static_peers` as written: a string "a;b" (the ROS_STATIC_PEERS form; commas also split) or a
    list of strings; empty means none."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = [p.strip() for p in re.split(r"[;,]", value)]
    elif isinstance(value, (list, tuple)) and all(isinstance(p, str) for p in value):
        items = [p.strip() for p in value]
    else:
        raise DiscoveryError(
            f"{PEERS_KEY} must be a string 'host1;host2' or a list of host names, got {value!r}"
        )
    peers = tuple(p for p in items if p)
    for p in peers:
        if not _PEER.match(p):
            raise DiscoveryError(f"{PEERS_KEY}: '{p}' is not a host name or an IP address")
    return peers


def parse_range(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in RANGES:
        raise DiscoveryError(f"{RANGE_KEY} must be one of {', '.join(RANGES)}, got {value!r}")
    return value.strip().lower()


def settings_from_params(params: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """`discovery_range` and `static_peers` of a params file's `/**` section, checked."""
    shared = ((params.get("/**") or {}).get("ros__parameters") or {}) if isinstance(params, Mapping) else {}
    return parse_range(shared.get(RANGE_KEY)), parse_peers(shared.get(PEERS_KEY))


def choose(
    env: Mapping[str, str],
    discovery_range: str | None = None,
    static_peers: tuple[str, ...] | list[str] = (),
    source: str = "params",
) -> Discovery:
    """The discovery the graph runs with, from the user's environment and the graph's settings
    (`discovery_range`: localhost|subnet or None for the default, localhost)."""
    user_range = (env.get(RANGE_ENV) or "").strip()
    user_peers = parse_peers(env.get(PEERS_ENV)) if env.get(PEERS_ENV) else ()
    if user_range:
        peers = f", {PEERS_ENV}={env.get(PEERS_ENV)}" if user_peers else ""
        caveat = ""
        if user_range.upper() == "LOCALHOST":
            caveat = " (not announced beyond this host, but listening on every interface: a host that names this one can join)"
        elif user_range.upper() in ("SUBNET", "SYSTEM_DEFAULT"):
            caveat = " (any host on the network on this ROS_DOMAIN_ID can join)"
        elif user_range.upper() == "OFF":
            caveat = " (no discovery between processes: the graph's nodes cannot find each other)"
        ignored = f"; the params' {RANGE_KEY} is not used" if discovery_range else ""
        return Discovery(
            range=user_range.upper(),
            loopback_only=False,
            source="environment",
            note=f"discovery: {RANGE_ENV}={user_range}{peers} from the environment{caveat}{ignored}",
            static_peers=user_peers,
        )
    wanted = parse_range(discovery_range) or DEFAULT_RANGE
    from_params = discovery_range is not None
    origin = source if from_params else "default"
    peers = user_peers or parse_peers(tuple(static_peers))
    peers_env = {PEERS_ENV: ";".join(peers)} if peers and not user_peers else {}
    peers_note = f", static peers {';'.join(peers)}" if peers else ""
    if wanted == "subnet":
        return Discovery(
            range="SUBNET",
            loopback_only=False,
            source=origin,
            note=f"discovery: subnet{peers_note} ({RANGE_KEY} from {origin}): any host on the network on "
            f"ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID') or '0'} can join the graph",
            env={RANGE_ENV: "SUBNET", **peers_env},
            static_peers=peers,
        )
    own_profile = not (
        env.get("FASTDDS_DEFAULT_PROFILES_FILE")
        or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")
        or env.get("FASTDDS_BUILTIN_TRANSPORTS")
    )
    if own_profile and not peers:
        return Discovery(
            range="loopback",
            loopback_only=True,
            source=origin,
            note="discovery: this host only (loopback-only Fast DDS profile, not reachable from other "
            f"hosts); {RANGE_KEY}: subnet in the params file's /** section for a LAN",
            env={RANGE_ENV: "SYSTEM_DEFAULT"},  # rmw leaves the profile's transports alone
        )
    why = "static peers" if peers else "your Fast DDS profile/transports decide the sockets"
    return Discovery(
        range="LOCALHOST",
        loopback_only=False,
        source=origin,
        note=f"discovery: LOCALHOST{peers_note} ({why}): not announced beyond this host, but listening on "
        "every interface: a host that names this one can join",
        env={RANGE_ENV: "LOCALHOST", **peers_env},
        static_peers=peers,
    )
