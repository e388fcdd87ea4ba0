"""SensorSilence: a sensor that stopped is not built into new observations (no open-loop commands)."""

import pytest

from rt_rl.core.robot import SensorSilence


def test_recent_samples_are_built():
    s = SensorSilence(0.05)
    assert s.update(10.0, 9.99) == (True, None)


def test_silence_begins_once_and_ends_once():
    s = SensorSilence(0.055)
    events = [s.update(10.0 + 0.01 * i, 10.0) for i in range(20)]  # the last sample at 10.0 s
    builds = [b for b, _ in events]
    assert builds[:6] == [True] * 6 and not any(builds[6:])
    assert [e for _, e in events if e] == ["silent"]
    assert s.update(10.3, 10.29) == (True, "back")
    assert s.silences == 1 and s.skipped == 14


@pytest.mark.parametrize("age", [0.0, -1.0])
def test_max_age_must_be_positive(age):
    with pytest.raises(ValueError):
        SensorSilence(age)
