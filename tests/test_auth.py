"""The run's identity (rt_rl.core.auth): tags over canonical fields, verified in constant time; the
arbiter core refuses a forged or modified action before it can change anything; tags survive the
wire (real messages, serialised and deserialised)."""

import array
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest

from rt_rl.core import auth
from rt_rl.core.arbiter import IMPLAUSIBLE, ArbiterConfig, ArbiterCore, Rejection, TickKind, TimedAction

KEY = b"k" * 64
OTHER = b"o" * 64


def stamp(seconds):
    return SimpleNamespace(sec=int(seconds), nanosec=round(seconds % 1 * 1e9))


def action_msg(**kw):
    m = SimpleNamespace(
        worker_id=1,
        observation_seq=100,
        observation_stamp=stamp(9.99),
        input_stamp=stamp(9.99),
        episode=0,
        schedule_revision=3,
        slot_end=stamp(10.0),
        inference_time=0.004,
        turnaround=0.0003,
        data=array.array("d", [0.1, -0.2]),
        auth_tag=auth.NO_TAG,
    )
    for k, v in kw.items():
        setattr(m, k, v)
    return m


# --- tag / verify ------------------------------------------------------------------------------------


def test_tag_is_16_bytes_deterministic_and_keyed():
    t = auth.tag(KEY, "x", 1, 2.0, b"ab")
    assert len(t) == 16 and t == auth.tag(KEY, "x", 1, 2.0, b"ab")
    assert t != auth.tag(OTHER, "x", 1, 2.0, b"ab")
    assert auth.verify(KEY, t, "x", 1, 2.0, b"ab")
    assert not auth.verify(OTHER, t, "x", 1, 2.0, b"ab")


def test_packing_is_unambiguous():
    assert auth.tag(KEY, 1) != auth.tag(KEY, 1.0)  # types are part of the packing
    assert auth.tag(KEY, b"ab", b"c") != auth.tag(KEY, b"a", b"bc")  # lengths too
    assert auth.tag(KEY, "ab", "c") != auth.tag(KEY, "a", "bc")
    assert auth.tag(KEY, 2**64 - 1) != auth.tag(KEY, -1)  # a uint64 and a negative int differ
    assert auth.tag(KEY, 0.0) != auth.tag(KEY, -0.0)  # IEEE bytes, not values
    with pytest.raises(TypeError):
        auth.tag(KEY, object())


def test_verify_refuses_wrong_length_and_zero_tags():
    t = auth.tag(KEY, 1)
    assert not auth.verify(KEY, t[:15], 1)
    assert not auth.verify(KEY, t + b"\0", 1)
    assert not auth.verify(KEY, auth.NO_TAG, 1)
    assert auth.verify(KEY, np.frombuffer(t, dtype=np.uint8), 1)  # as a uint8[16] field arrives
    assert auth.verify(KEY, list(t), 1)


@pytest.mark.parametrize(
    "change",
    [
        {"worker_id": 0},
        {"observation_seq": 101},
        {"observation_seq": 2**63 - 7},
        {"observation_stamp": stamp(10.99)},
        {"observation_stamp": SimpleNamespace(sec=9, nanosec=990_000_001)},
        {"input_stamp": stamp(9.98)},
        {"episode": 1},
        {"schedule_revision": 4},
        {"slot_end": stamp(10.01)},
        {"inference_time": 0.0},
        {"turnaround": 1.0},
        {"data": array.array("d", [0.1, -0.2000001])},
        {"data": array.array("d", [0.1])},
        {"data": array.array("d", [math.nan, -0.2])},
    ],
)
def test_every_signed_field_of_an_action_matters(change):
    signed = auth.tag(KEY, *auth.action_fields(action_msg()))
    assert auth.verify(KEY, signed, *auth.action_fields(action_msg()))
    assert not auth.verify(KEY, signed, *auth.action_fields(action_msg(**change)))


def test_data_as_list_or_array_packs_the_same():
    a = auth.action_fields(action_msg(data=[0.1, -0.2]))
    b = auth.action_fields(action_msg(data=np.array([0.1, -0.2])))
    assert a == b == auth.action_fields(action_msg())


def test_message_kinds_are_separated():
    """A tag made for one kind never verifies as another, even over the same numbers."""
    sched = SimpleNamespace(
        revision=1,
        num_workers=2,
        control_period=0.01,
        inference_time=0.02,
        spacing=0.01,
        lead=0.022,
        epoch=stamp(5.0),
        workers=array.array("I", [0, 1]),
        sensor_period=0.0,
        sensor_phase=0.0,
    )
    fields = auth.schedule_fields(sched)
    assert fields[0] == "rt_rl/Schedule"
    t = auth.tag(KEY, *fields)
    assert not auth.verify(KEY, t, "rt_rl/Action", *fields[1:])
    sched.workers = array.array("I", [0, 7])
    assert not auth.verify(KEY, t, *auth.schedule_fields(sched))


def test_authenticator_counts_forged_by_kind_and_unauthenticated():
    signer, reader = auth.Authenticator(KEY), auth.Authenticator(KEY)
    fields = auth.action_fields(action_msg())
    good = signer.sign(fields)
    assert good.dtype == np.uint8 and good.shape == (16,)
    assert reader.check("action", good, fields)
    assert not reader.check("action", good, auth.action_fields(action_msg(episode=5)))
    assert not reader.check("schedule", auth.Authenticator(OTHER).sign(fields), fields)
    assert reader.counts() == {
        "authenticated": True,
        "verified": 1,
        "forged": {"action": 1, "schedule": 1},
        "unauthenticated": 0,
    }
    open_node = auth.Authenticator(None)
    assert open_node.sign(fields).tobytes() == auth.NO_TAG
    assert open_node.check("action", b"junk", fields)  # nothing checked without a key, but counted
    assert open_node.counts()["unauthenticated"] == 1 and not open_node.counts()["authenticated"]


def test_key_from_environment():
    assert auth.key_from_env({}) is None
    assert auth.key_from_env({auth.KEY_ENV: ""}) is None
    assert auth.key_from_env({auth.KEY_ENV: "abc"}) == b"abc"
    made = auth.graph_key_env({})[auth.KEY_ENV]
    assert len(made) == 64 and bytes.fromhex(made)
    assert made != auth.graph_key_env({})[auth.KEY_ENV]  # one per launch
    assert auth.graph_key_env({auth.KEY_ENV: "mine"}) == {}  # the user's key wins


def test_cost_per_call_is_microseconds():
    """Sign and verify an Action of a Hopper (3 actions) and a Schedule of 5 workers; printed (-s)."""
    msg = action_msg(data=array.array("d", [0.1, -0.2, 0.3]))
    a = auth.Authenticator(KEY)
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        signed = a.sign(auth.action_fields(msg))
    sign_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        assert a.check("action", signed, auth.action_fields(msg))
    check_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        auth.tag(KEY, "x", 1, 2, 3, 4.0, b"0123456789abcdef01234567")
    raw_us = (time.perf_counter() - t0) / n * 1e6
    print(f"auth cost: action sign {sign_us:.2f} us, action check {check_us:.2f} us, tag {raw_us:.2f} us")
    assert sign_us < 100 and check_us < 100  # loose: a loaded 2-core machine


# --- the arbiter core ---------------------------------------------------------------------------------


def core(**kw):
    cfg = dict(action_dim=2, lower=[-1, -1], upper=[1, 1], max_action_age=0.1, pool_size=2)
    cfg.update(kw)
    return ArbiterCore(ArbiterConfig(**cfg))


def timed(m) -> TimedAction:
    """What the arbiter node makes of an Action message."""

    def sec(t):
        return t.sec + t.nanosec * 1e-9

    return TimedAction(
        np.asarray(m.data, dtype=np.float64),
        sec(m.observation_stamp),
        m.observation_seq,
        m.worker_id,
        episode=m.episode,
        input_stamp=sec(m.input_stamp),
        inference_time=m.inference_time,
        turnaround=m.turnaround,
    )


def offer(c, reader, m, now):
    """The node's path: verify the message's tag, then offer it to the core."""
    return c.offer(timed(m), now, reader.check("action", m.auth_tag, auth.action_fields(m)))


def signed(key=KEY, **kw):
    m = action_msg(**kw)
    m.auth_tag = auth.Authenticator(key).sign(auth.action_fields(m))
    return m


def test_core_refuses_forged_before_any_state_changes():
    """Forgeries that would otherwise be actuated, poison the order state or start an episode: each is
    refused as forged, and the real worker's next action is actuated as if they had not come."""
    c, reader = core(), auth.Authenticator(KEY)
    assert offer(c, reader, signed(observation_seq=100, observation_stamp=stamp(9.99)), 10.0) is None
    assert c.tick(10.0).kind is TickKind.FRESH
    forgeries = [
        signed(OTHER, observation_seq=101, observation_stamp=stamp(10.005)),  # plausible in every field
        signed(OTHER, observation_seq=2**52, observation_stamp=stamp(10.005)),  # would lock the order
        signed(OTHER, observation_seq=101, observation_stamp=stamp(10.005), episode=1),  # would end it
        action_msg(observation_seq=101, observation_stamp=stamp(10.005)),  # no tag at all
    ]
    copied = signed(observation_seq=101, observation_stamp=stamp(10.005))
    copied.data = array.array("d", [0.9, 0.9])  # a real message, modified
    forgeries.append(copied)
    bumped = signed(observation_seq=101, observation_stamp=stamp(10.005))
    bumped.observation_seq = 2**52  # a real tag, another seq
    forgeries.append(bumped)
    for m in forgeries:
        assert offer(c, reader, m, 10.01) is Rejection.FORGED
    assert c.rejected[Rejection.FORGED] == len(forgeries)
    assert Rejection.FORGED in IMPLAUSIBLE  # its timings are not fed to the planner either
    assert c.episode == 0  # no forged episode started
    assert c.tick(10.01).kind is TickKind.FALLBACK  # nothing forged actuated
    real = signed(observation_seq=101, observation_stamp=stamp(10.015), data=array.array("d", [0.3, 0.3]))
    assert offer(c, reader, real, 10.02) is None
    decision = c.tick(10.02)
    assert decision.kind is TickKind.FRESH and decision.command.tolist() == [0.3, 0.3]


def test_a_replayed_real_action_is_left_to_the_order_checks():
    c, reader = core(), auth.Authenticator(KEY)
    m = signed(observation_seq=100, observation_stamp=stamp(9.99))
    assert offer(c, reader, m, 10.0) is None
    assert c.tick(10.0).kind is TickKind.FRESH
    assert offer(c, reader, m, 10.01) is Rejection.DUPLICATE  # the tag verifies: a replay is real
    assert offer(c, reader, m, 10.2) is Rejection.STALE
    assert c.tick(10.2).kind is TickKind.WATCHDOG


def test_forged_heartbeat_is_refused():
    c = core()
    assert c.check_heartbeat(0, 0.01, 0.0, authentic=False) is Rejection.FORGED
    assert c.check_heartbeat(0, 0.01, 0.0) is None
    assert c.rejected[Rejection.FORGED] == 1


def test_unauthenticated_graph_accepts_and_counts():
    c, reader = core(), auth.Authenticator(None)
    assert offer(c, reader, action_msg(observation_stamp=stamp(9.99)), 10.0) is None
    assert reader.counts()["unauthenticated"] == 1


# --- real messages over the wire ----------------------------------------------------------------------


def test_tags_survive_serialisation_of_real_messages():
    serialization = pytest.importorskip("rclpy.serialization")
    msgs = pytest.importorskip("rt_rl_interfaces.msg")
    from builtin_interfaces.msg import Time

    def wire(m):
        return serialization.deserialize_message(serialization.serialize_message(m), type(m))

    a = auth.Authenticator(KEY)
    act = msgs.Action(worker_id=2, observation_seq=2**40, episode=3, schedule_revision=7)
    act.observation_stamp = Time(sec=1_765_000_000, nanosec=123_456_789)
    act.input_stamp = Time(sec=1_765_000_000, nanosec=1)
    act.inference_time, act.turnaround = 0.0123, 0.0004
    act.data = array.array("d", [0.1, -0.5, 1e-300])
    act.auth_tag = a.sign(auth.action_fields(act))
    got = wire(act)
    assert a.check("action", got.auth_tag, auth.action_fields(got))
    got.observation_stamp.nanosec += 1
    assert not a.check("action", got.auth_tag, auth.action_fields(got))

    obs = msgs.Observation(seq=5, episode=1)
    obs.data = array.array("f", [0.25, -1.5])
    obs.header.stamp = Time(sec=3, nanosec=4)
    obs.auth_tag = a.sign(auth.observation_fields(obs))
    assert a.check("observation", wire(obs).auth_tag, auth.observation_fields(wire(obs)))

    rew = msgs.Reward(episode=4, step=17, reward=1.25, terminated=True, episode_return=33.0)
    rew.auth_tag = a.sign(auth.reward_fields(rew))
    assert a.check("episode_end", wire(rew).auth_tag, auth.reward_fields(wire(rew)))
    rew.truncated = True
    assert not a.check("episode_end", wire(rew).auth_tag, auth.reward_fields(wire(rew)))

    from rt_rl.core.grid import Schedule
    from rt_rl.nodes.common import schedule_from_msg, schedule_to_msg

    sched = schedule_to_msg(
        Schedule(3, 2, 0.01, 0.015, 0.01, 0.017, 1_765_000_000.25, (1, 0), 0.004, 0.001), a
    )
    back = wire(sched)
    assert a.check("schedule", back.auth_tag, auth.schedule_fields(back))
    assert schedule_from_msg(back).workers == (1, 0)
    assert not a.check(
        "schedule", schedule_to_msg(schedule_from_msg(back)).auth_tag, auth.schedule_fields(back)
    )
