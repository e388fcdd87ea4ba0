"""Which of the sim's finished episodes count as the policy's: started and ended in the measurement window."""

from rt_rl.launcher import episodes_in_window

START, END = 100.0, 220.0


def test_episodes_inside_the_window_count():
    inside = [[100.0, 3200.0, 1000, 110.0], [110.0, 850.0, 265, 112.65]]
    assert episodes_in_window(inside, START, END) == inside


def test_an_episode_that_started_before_the_window_does_not_count():
    assert episodes_in_window([[99.9, 1050.0, 320, 103.1]], START, END) == []


def test_episodes_that_end_after_the_window_do_not_count():
    # the arbiter stopped at 220 s: the episode it was in fell on the held command, the next fell at once
    ended_by_the_stop = [[215.0, 2411.9, 753, 222.5], [222.5, 30.2, 18, 222.7]]
    assert episodes_in_window(ended_by_the_stop, START, END) == []


def test_an_episode_without_its_end_time_counts_by_its_start():
    assert episodes_in_window([[150.0, 1000.0, 300]], START, END) == [[150.0, 1000.0, 300]]
