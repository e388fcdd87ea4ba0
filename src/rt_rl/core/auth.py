"""The graph's per-run identity: message authentication with a key only the graph's nodes hold (no ROS).

Anything published on DDS can be read, and written, by any process on the domain (and on a LAN, by any
machine). A worker id, a schedule revision or a sequence number can be copied from the bus; a secret
that never travels on it cannot. Whoever starts the graph (`rt-rl launch`, the launch file) makes a
random key per launch and hands it to every node in the environment variable `RT_RL_GRAPH_KEY` (never
on the bus, never as a ROS parameter: parameter services are readable by anyone on the domain). A user
may set it themselves, e.g. for workers started by hand on another host. Each publisher of an input of
the graph's decisions (worker -> Action, arbiter -> Schedule, simulator or ingest -> episode
boundaries and rewards, ingest -> Observation) puts `tag(key, fields...)` into the message's
`auth_tag`; each reader verifies it before the message can change anything. A message from a process
without the key (an outsider, a stale graph of an earlier run on the same domain) or a real message
modified on the way does not verify; a verbatim replay of a real one does, and is left to the order
checks that follow (sequence, stamps, revisions).

`tag` is HMAC-SHA256 truncated to 16 bytes (128 bits: a forger's guess succeeds with probability
2^-128) over a canonical packing of the fields: each field's type and its bytes (ints in decimal,
floats as their IEEE-754 bytes, byte strings and numeric arrays with their length). The
first field of every message kind is the kind's name, so a tag made for one kind never verifies as
another. Measured here: about 2-3 us per tag or verification of an Action (Python's C HMAC).

Without a key (the variable unset) a node runs unauthenticated: nothing is checked and every message
is counted as `unauthenticated` in its report, so a graph that is open says so. What this does not
protect against: a process that has the key (the same user can read the nodes' environment), flooding
(denial of service), or readers of the bus (nothing is encrypted); SROS2 (DDS security) is the access
control for that where the middleware has the plugins (docs/security.md).
"""

from __future__ import annotations

import array
import hmac
import os
import secrets
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

KEY_ENV = "RT_RL_GRAPH_KEY"
TAG_SIZE = 16
NO_TAG = bytes(TAG_SIZE)  # what an unauthenticated node sends (the message's default)

_DOUBLE = struct.Struct("<d")


def new_key() -> str:
    """A fresh per-run key: 32 random bytes as 64 hex characters."""
    return secrets.token_hex(32)


def key_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The graph key from `RT_RL_GRAPH_KEY` (any non-empty string; its UTF-8 bytes are the HMAC key),
    None when it is not set."""
    value = (os.environ if env is None else env).get(KEY_ENV, "")
    return value.encode() if value else None


def graph_key_env(env: Mapping[str, str]) -> dict[str, str]:
    """What a front end adds to the nodes' environment: a new per-run key, unless the user set one."""
    return {} if env.get(KEY_ENV) else {KEY_ENV: new_key()}


def _pack(fields: tuple) -> bytes:
    """The canonical bytes of `fields`, each a type letter and its bytes: `i<decimal>;` for an int,
    `f` and the 8 IEEE-754 bytes for a float, `b<length>:` or `s<length>:` then the bytes of a byte
    string or a (UTF-8) string. No two different field lists pack alike."""
    out = []
    for f in fields:
        t = type(f)
        if t is bytes:
            out += (b"b%d:" % len(f), f)
        elif t is str:
            raw = f.encode()
            out += (b"s%d:" % len(raw), raw)
        elif t is float or isinstance(f, np.floating):
            out += (b"f", _DOUBLE.pack(f))
        elif t is int or t is bool or isinstance(f, (np.integer, np.bool_)):
            out.append(b"i%d;" % int(f))
        elif isinstance(f, (bytearray, memoryview)):
            raw = bytes(f)
            out += (b"b%d:" % len(raw), raw)
        else:
            raise TypeError(f"cannot authenticate a field of type {t.__name__}")
    return b"".join(out)


def tag(key: bytes, *fields: Any) -> bytes:
    """The 16-byte tag of `fields` (ints, floats, strings, bytes) under `key`."""
    return hmac.digest(key, _pack(fields), "sha256")[:TAG_SIZE]


def tag_bytes(value: Any) -> bytes:
    """A received `auth_tag` field (a numpy uint8 array, array.array, bytes or a list) as bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if hasattr(value, "tobytes"):
        return value.tobytes()
    return bytes(value)


def verify(key: bytes, received: Any, *fields: Any) -> bool:
    """`received` is the tag of `fields` under `key` (constant-time comparison)."""
    return hmac.compare_digest(tag_bytes(received), tag(key, *fields))


# --- the signed fields of each message kind (duck-typed messages: no rclpy here) ---------------------


# Each kind's scalar fields packed at their wire types in one struct call (a tenth of the generic
# packing's cost), then its arrays: (kind, scalars, arrays...) is what `tag` packs.
_ACTION = struct.Struct("<IQiIiIIIiIdd")
_SCHEDULE = struct.Struct("<IIddddiIdd")
_REWARD = struct.Struct("<iIIQd??d")
_OBSERVATION = struct.Struct("<iIQIiI")


def float64_bytes(values: Any) -> bytes:
    if isinstance(values, array.array) and values.typecode == "d":
        return values.tobytes()
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()


def float32_bytes(values: Any) -> bytes:
    if isinstance(values, array.array) and values.typecode == "f":
        return values.tobytes()
    return np.ascontiguousarray(values, dtype=np.float32).tobytes()


def uint32_bytes(values: Any) -> bytes:
    if isinstance(values, array.array) and values.typecode == "I":
        return values.tobytes()
    return np.ascontiguousarray(values, dtype=np.uint32).tobytes()


def action_fields(m: Any) -> tuple:
    """What a worker vouches for in an Action: who, from which observation, in which episode, on which
    schedule and slot, its timings (they feed the schedule planner) and the command."""
    o, i, e = m.observation_stamp, m.input_stamp, m.slot_end
    scalars = _ACTION.pack(
        m.worker_id,
        m.observation_seq,
        o.sec,
        o.nanosec,
        i.sec,
        i.nanosec,
        m.episode,
        m.schedule_revision,
        e.sec,
        e.nanosec,
        m.inference_time,
        m.turnaround,
    )
    return ("rt_rl/Action", scalars, float64_bytes(m.data))


def schedule_fields(m: Any) -> tuple:
    """Every field of a Schedule a reader uses (the header stamp is not used)."""
    scalars = _SCHEDULE.pack(
        m.revision,
        m.num_workers,
        m.control_period,
        m.inference_time,
        m.spacing,
        m.lead,
        m.epoch.sec,
        m.epoch.nanosec,
        m.sensor_period,
        m.sensor_phase,
    )
    return ("rt_rl/Schedule", scalars, uint32_bytes(m.workers))


def reward_fields(m: Any) -> tuple:
    """A Reward: a simulation step's reward, and on the episode-end topic an episode boundary."""
    t = m.header.stamp
    scalars = _REWARD.pack(
        t.sec, t.nanosec, m.episode, m.step, m.reward, m.terminated, m.truncated, m.episode_return
    )
    return ("rt_rl/Reward", scalars)


def observation_fields(m: Any) -> tuple:
    t, s = m.header.stamp, m.slot_start
    scalars = _OBSERVATION.pack(t.sec, t.nanosec, m.seq, m.episode, s.sec, s.nanosec)
    return ("rt_rl/Observation", scalars, float32_bytes(m.data))


class Authenticator:
    """One node's signer and verifier with its counts. Without a key it signs nothing (`NO_TAG`) and
    accepts everything, counting each check as `unauthenticated`."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.forged: dict[str, int] = {}  # per message kind (topic role): tags that did not verify
        self.verified = 0
        self.unauthenticated = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Authenticator:
        return cls(key_from_env(env))

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def sign(self, fields: tuple) -> np.ndarray:
        """The tag for a message's `auth_tag` field (uint8[16]: a numpy array)."""
        raw = NO_TAG if self.key is None else tag(self.key, *fields)
        return np.frombuffer(raw, dtype=np.uint8)

    def check(self, kind: str, received: Any, fields: tuple) -> bool:
        """The message (of `kind`, for the counts) may be used: its tag verifies, or there is no key."""
        if self.key is None:
            self.unauthenticated += 1
            return True
        if verify(self.key, received, *fields):
            self.verified += 1
            return True
        self.forged[kind] = self.forged.get(kind, 0) + 1
        return False

    def counts(self) -> dict[str, Any]:
        return {
            "authenticated": self.enabled,
            "verified": self.verified,
            "forged": dict(self.forged),
            "unauthenticated": self.unauthenticated,
        }
