def test_a_respawned_worker_starts_with_the_policy_the_others_run():
    from rt_rl.launcher import _override, respawn_policy

    statuses = {
        "inference_worker_0": {"policy_checkpoint": "old.pt"},  # the one that died: not asked
        "inference_worker_1": {"policy_checkpoint": "new.pt"},
        "inference_worker_2": {"policy_checkpoint": "new.pt"},
        "actuator_arbiter": {},
    }
    assert respawn_policy(statuses, "inference_worker_0") == "new.pt"
    assert respawn_policy({"inference_worker_0": {"policy_checkpoint": "x"}}, "inference_worker_0") is None
    args = [
        "python",
        "--ros-args",
        "--params-file",
        "p.yaml",
        "-p",
        "policy_checkpoint:=a.pt",
        "-p",
        "policy_checkpoint:=b.pt",
    ]
    assert _override(args, "policy_checkpoint") == "b.pt" and _override(args, "seed") is None
