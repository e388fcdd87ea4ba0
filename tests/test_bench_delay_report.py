"""The bench delay table's reading of paper B's ordering: findings only beyond the spread over seeds."""

import pytest

from rt_rl.bench.delay import _markdown, compare, ordering, parse_seeds_at, plan, reading


def rows(task: str, delay: int, returns: dict[str, list[float]]) -> list[dict]:
    return [
        {"task": task, "variant": variant, "delay": delay, "seed": seed, "final_return": r}
        for variant, rs in returns.items()
        for seed, r in enumerate(rs)
    ]


def test_compare_is_a_finding_only_beyond_two_standard_errors():
    assert compare([1000, 1010, 990], [500, 510, 490]) == "yes"
    assert compare([500, 510, 490], [1000, 1010, 990]) == "no"
    # means 100 apart, but seeds spread by hundreds: the seeds do not say
    assert compare([1200, 600, 900], [800, 1000, 700]) == "spread"


def test_compare_with_one_seed_does_not_decide():
    assert compare([2000], [100, 110]) == "spread"


def test_ordering_holds_only_when_both_steps_are_findings():
    clear = rows("Hopper-v5", 2, {"pipelined": [100, 110, 90], "pipelined_skip": [500, 510, 490],
                                  "pipelined_skip+hist2": [900, 910, 890]})  # fmt: skip
    assert ordering(clear, [2])[0]["holds"] == "yes"
    noisy = rows("Hopper-v5", 2, {"pipelined": [100, 110, 90], "pipelined_skip": [500, 510, 490],
                                  "pipelined_skip+hist2": [300, 900, 600]})  # fmt: skip
    o = ordering(noisy, [2])[0]
    assert (o["skip_ge_pipelined"], o["hist_ge_skip"], o["holds"]) == ("yes", "spread", "spread")
    reversed_ = rows("Hopper-v5", 2, {"pipelined": [900, 910, 890], "pipelined_skip": [500, 510, 490],
                                      "pipelined_skip+hist2": [300, 900, 600]})  # fmt: skip
    assert ordering(reversed_, [2])[0]["holds"] == "no"


def test_ordering_skips_a_delay_some_variant_has_not_run():
    partial = rows("Hopper-v5", 4, {"pipelined": [100, 110], "pipelined_skip": [500, 510]})
    assert ordering(partial, [4]) == []


def test_report_names_its_own_plot_and_calls_only_a_short_budget_small():
    meta = {"command": "x", "depth": 3, "hidden": 64, "critic_hidden": 64, "batch_size": 64,
            "learning_starts": 1000, "seeds": [0], "eval_episodes": 5}  # fmt: skip
    long = _markdown({**meta, "ticks": {"Hopper-v5": 150_000}}, "", "bench_delay_150k.png")
    assert "![plot](bench_delay_150k.png)" in long and "small budget" not in long
    short = _markdown({**meta, "ticks": {"Hopper-v5": 6000}}, "", "bench_delay.png")
    assert "small budget" in short


def test_plan_runs_a_delays_extra_seeds_only_at_that_delay_and_the_mlp_at_every_seed():
    jobs = plan(["Hopper-v5"], [1, 2, 4], [0, 1], parse_seeds_at(["2=0,1,2"]))
    seed2 = [(arch, k) for _, seed, arch, _, k in jobs if seed == 2]
    assert sorted(seed2) == sorted(
        [("mlp", 0), ("pipelined", 2), ("pipelined_skip", 2), ("pipelined_skip", 2)]
    )
    assert len(jobs) == 2 * 10 + 4
    assert [seed for _, seed, *_ in jobs] == sorted(seed for _, seed, *_ in jobs)  # seed-major


def test_seeds_at_rejects_a_malformed_item_in_one_line():
    for bad in ["2", "2=", "x=1", "2=1,a"]:
        with pytest.raises(ValueError, match="DELAY=SEED"):
            parse_seeds_at([bad])


def test_reading_names_the_cells_where_it_holds_is_reversed_or_cannot_say():
    clear = rows("Hopper-v5", 2, {"pipelined": [100, 110, 90], "pipelined_skip": [500, 510, 490],
                                  "pipelined_skip+hist2": [900, 910, 890]})  # fmt: skip
    noisy = rows("HalfCheetah-v5", 1, {"pipelined": [900, 100], "pipelined_skip": [500, 520],
                                       "pipelined_skip+hist2": [300, 900]})  # fmt: skip
    text = reading(ordering(clear, [2]) + ordering(noisy, [1]))
    assert "holds beyond the spread in: Hopper-v5 delay 2." in text
    assert "reversed beyond the spread in: none." in text
    assert "do not let it say in: HalfCheetah-v5 delay 1." in text
    assert "paper's order in 2 of 2 cells" in text
    assert "nothing to read" in reading([])
