"""docs/parameters.md is generated from the nodes' declarations and must be current."""

from rt_rl.paramdoc import NODES, main, render


def test_the_parameter_page_is_current():
    assert main(["--check"]) == 0, "docs/parameters.md is stale: run python -m rt_rl.paramdoc"


def test_every_node_and_the_live_parameters_are_on_the_page():
    page = render()
    for node in NODES:
        assert f"## {node}" in page
    assert "| `control_rate_hz` | double | `100.0` | [0.1, 10000] | live |" in page
