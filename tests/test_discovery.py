"""Who can discover the graph (rt_rl.discovery), without ROS: this host only by default, a LAN when the
params file says so, the user's environment first."""

import xml.etree.ElementTree as ET

import pytest
from conftest import REPO

from rt_rl.discovery import (
    PEERS_ENV,
    RANGE_ENV,
    DiscoveryError,
    choose,
    parse_peers,
    parse_range,
    settings_from_params,
)
from rt_rl.graph import (
    DDS_PROFILE,
    DDS_PROFILE_LOCALHOST,
    DDS_PROFILE_REALTIME,
    DDS_PROFILE_REALTIME_LOCALHOST,
    node_environment,
)


def shared(**values) -> dict:
    return {"/**": {"ros__parameters": values}}


def test_default_is_this_host_only_with_the_loopback_profile():
    d = choose({})
    assert d.private and d.loopback_only and d.source == "default"
    # rmw leaves the profile's transports alone (its LOCALHOST would add transports on every interface)
    assert d.env == {RANGE_ENV: "SYSTEM_DEFAULT"}
    assert "this host only" in d.note
    env = node_environment({}, discovery=d)
    assert env[RANGE_ENV] == "SYSTEM_DEFAULT"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE_LOCALHOST)
    rt = node_environment({}, realtime=True, discovery=d)
    assert rt["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE_REALTIME_LOCALHOST)


def test_subnet_switch_from_the_params_file():
    rng, peers = settings_from_params(shared(discovery_range="subnet", static_peers="10.0.0.7; gpu-box"))
    assert (rng, peers) == ("subnet", ("10.0.0.7", "gpu-box"))
    d = choose({"ROS_DOMAIN_ID": "12"}, rng, peers)
    assert not d.private and d.range == "SUBNET" and d.source == "params"
    assert d.env == {RANGE_ENV: "SUBNET", PEERS_ENV: "10.0.0.7;gpu-box"}
    assert "any host on the network" in d.note and "ROS_DOMAIN_ID=12" in d.note
    env = node_environment({}, discovery=d)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE)
    assert node_environment({}, True, d)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE_REALTIME)


def test_params_without_a_setting_mean_localhost():
    assert settings_from_params(shared(task="Hopper-v5")) == (None, ())
    assert settings_from_params({}) == (None, ())
    assert choose({}, *settings_from_params(shared(discovery_range="LOCALHOST"))).loopback_only


@pytest.mark.parametrize("user", ["LOCALHOST", "SUBNET", "SYSTEM_DEFAULT", "OFF"])
def test_the_users_range_wins_and_is_reported(user):
    d = choose({RANGE_ENV: user}, "subnet" if user != "SUBNET" else "localhost", ("10.0.0.7",))
    assert d.source == "environment" and d.range == user and d.env == {}
    assert f"{RANGE_ENV}={user} from the environment" in d.note and "not used" in d.note
    env = node_environment({RANGE_ENV: user}, discovery=d)
    assert RANGE_ENV not in env and PEERS_ENV not in env
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE)  # never the loopback one


def test_user_localhost_is_reported_as_reachable_by_name():
    d = choose({RANGE_ENV: "LOCALHOST"})
    assert not d.private and "a host that names this one can join" in d.note


def test_users_static_peers_replace_the_files():
    d = choose({PEERS_ENV: "robot.local"}, "subnet", ("10.0.0.7",))
    assert d.static_peers == ("robot.local",) and PEERS_ENV not in d.env
    assert d.env == {RANGE_ENV: "SUBNET"}


def test_localhost_with_peers_is_rmws_localhost():
    d = choose({}, "localhost", ("10.0.0.7",))
    assert not d.loopback_only and d.env == {RANGE_ENV: "LOCALHOST", PEERS_ENV: "10.0.0.7"}
    assert node_environment({}, discovery=d)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE)


@pytest.mark.parametrize(
    "env",
    [
        {"FASTDDS_DEFAULT_PROFILES_FILE": "mine.xml"},
        {"FASTRTPS_DEFAULT_PROFILES_FILE": "mine.xml"},
        {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"},
    ],
)
def test_a_users_profile_or_transports_keep_their_sockets_with_rmws_localhost(env):
    d = choose(env)
    assert d.range == "LOCALHOST" and not d.loopback_only and d.env == {RANGE_ENV: "LOCALHOST"}
    out = node_environment(env, True, d)
    if "FASTDDS_BUILTIN_TRANSPORTS" in env:
        assert out["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE)
    else:
        assert "FASTDDS_DEFAULT_PROFILES_FILE" not in out


def test_no_decision_leaves_discovery_to_the_environment():
    env = node_environment({})
    assert RANGE_ENV not in env and env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE)


@pytest.mark.parametrize(
    "params, message",
    [
        (shared(discovery_range="lan"), "discovery_range must be one of localhost, subnet"),
        (shared(discovery_range=3), "discovery_range must be one of"),
        (shared(static_peers="10.0.0.1 10.0.0.2"), "not a host name"),
        (shared(static_peers=[1, 2]), "static_peers must be"),
    ],
)
def test_bad_settings_are_one_line_errors(params, message):
    with pytest.raises(DiscoveryError, match=message) as err:
        settings_from_params(params)
    assert "\n" not in str(err.value)


def test_peer_forms():
    assert parse_peers(["a", " b "]) == ("a", "b")
    assert parse_peers("a,b;;c") == ("a", "b", "c")
    assert parse_peers("") == () and parse_peers(None) == ()
    assert parse_peers("fe80::1") == ("fe80::1",)
    assert parse_range(" Subnet ") == "subnet" and parse_range(None) is None


@pytest.mark.parametrize("profile", [DDS_PROFILE_LOCALHOST, DDS_PROFILE_REALTIME_LOCALHOST])
def test_loopback_profiles_bind_nothing_but_loopback(profile):
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(profile).getroot()
    udp = [
        t for t in root.iterfind(".//d:transport_descriptor", ns) if t.findtext("d:type", None, ns) == "UDPv4"
    ]
    assert len(udp) == 1
    allow = [a.text for a in udp[0].iterfind("d:interfaceWhiteList/d:address", ns)]
    assert allow == ["127.0.0.1"]
    participant = root.find(".//d:participant", ns)
    assert participant.findtext("d:rtps/d:useBuiltinTransports", None, ns) == "false"
    builtin = participant.find("d:rtps/d:builtin", ns)
    for tag in ("metatrafficUnicastLocatorList", "initialPeersList"):
        addresses = [a.text for a in builtin.iterfind(f"d:{tag}/d:locator/d:udpv4/d:address", ns)]
        assert addresses == ["127.0.0.1"], tag
    assert builtin.find("d:metatrafficMulticastLocatorList", ns) is None
    shm = [
        t for t in root.iterfind(".//d:transport_descriptor", ns) if t.findtext("d:type", None, ns) == "SHM"
    ]
    fifo = shm[0].findtext("d:default_reception_threads/d:scheduling_policy", None, ns)
    assert (fifo == "1") == (profile == DDS_PROFILE_REALTIME_LOCALHOST)


def test_launcher_refuses_a_bad_discovery_range_with_one_line(tmp_path, capsys):
    import yaml

    from rt_rl.launcher import EXIT_CONFIG, Launcher, LaunchOptions

    params = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    params.setdefault("/**", {"ros__parameters": {}})["ros__parameters"]["discovery_range"] = "lan"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    code = Launcher(LaunchOptions(str(path), run_dir=str(tmp_path / "run"), quiet=True)).run()
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG
    assert err.count("\n") == 1 and "discovery_range must be one of localhost, subnet" in err, err
    assert str(path) in err
