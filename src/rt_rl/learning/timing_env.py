"""The live graph's timing, reproduced in simulated time as a Gymnasium environment.

Time base
---------
- env step: one `env.step` of the task's Gymnasium env, `env.dt = timestep * frame_skip` seconds of
  physics (the live `mujoco_sim` calls it once per env.dt of wall time with the latest command held).
- tick: one control period = `control_steps` (m) env steps, `control_period = m * env.dt` seconds. The
  actuator applies exactly one command per tick (zero-order hold over its m env steps).

Workers (paper A staggering on one slot clock): N workers, inference takes D ticks
(`inference_ticks`). Slot spacing s = max(1, ceil(D / N)) ticks; worker j starts at ticks
j*s, j*s + N*s, ...; at its start it takes the newest observation (the one built at the start of that
tick) and its action reaches the actuator at start + D. A tick with no arriving action applies the
fallback: `hold` (repeat the last executed command) or `zero`. D = 0 means an instant policy (the
action acts at the tick its observation was taken).

Delay varying across runs (`delay_choices`): the live graph's delay is constant within a run but not
the same in every run. With `delay_choices` each `reset` draws the episode's D uniformly from the
sequence (repeat a value to weight it) with the env's seeded RNG, or takes `options={"delay": D}`;
the slot spacing s stays the nominal one of `inference_ticks` (starts are s >= 1 ticks apart and D is
constant within an episode, so arrivals never collide). `info["delay"]` is the episode's D.

Actuation on a robot (`actuation_offset`): a ros2_control robot writes the newest command to its
actuators at every controller update (every physics step here), so the command of tick k acts from
the first physics step after it arrives, not from a step boundary. Ticks are laid `a` seconds after
the joint-state sample their slot's observation shows (the arbiter locks them there), and the command
reaches the robot `L` seconds after its tick: it acts from physics step ceil((a + L) / h) of the
tick's period (h the physics timestep), the previous command before it. `actuation_offset = (lo, hi)`
draws a + L per episode uniformly (or `options={"offset": x}`), `offset_jitter` adds U[0, jitter) per
tick (the transport's jitter); `offset_samples` (measured live) instead draws each tick's from those;
all are clipped to one control period. (0, 0) is the instant
actuation of a simulator that steps a whole period with the command it took at the period's start.
The observation's history holds the commands of the ticks before its slot's tick: heard by the
ingest, acted or acting on the robot when the state was sampled. `info["offset"]` is the episode's.

Observations are built with `rt_rl.core.observation.ObservationBuilder` from the joint states the live
sim publishes (same code as `sensor_ingest`): normalised raw task observation ++ the last k executed
commands (what the actuator really applied, fallbacks included), in actuator units.

Gymnasium interface: one `step` is one worker slot (s ticks). `step(action)` takes the action of the
worker named in the previous `info["worker"]`, computed from the previous observation (actuator units,
`action_space` = the task's actuator range). It returns the observation at the next slot start, the
sum of the env rewards over the slot's ticks (so episode returns equal the Gymnasium returns), and in
`info["ticks"]` one record per tick for the trainer (the observation at that tick, the command
applied, whether it was fresh, the tick's reward and the next observation). The pipeline state of each
worker is the caller's: it advances once per worker cycle (every N*s ticks) and is reset at `reset`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rt_rl.core.grid import make_schedule
from rt_rl.core.mujoco_task import SubstepStepper, joint_state, make_env
from rt_rl.core.observation import ObservationBuilder
from rt_rl.tasks import TaskSpec, get_task

FALLBACKS = ("hold", "zero")


@dataclass
class Timing:
    """What a policy is trained for and deployed with (stored as PolicyInfo.timing)."""

    control_period: float  # seconds per tick
    sensor_period: float  # seconds per env step (env.dt): the live sim publishes joint states each step
    frame_skip: int  # physics steps per env step
    inference_ticks: int  # D: ticks from a worker's start (its observation) to its action's actuation
    num_workers: int  # N
    fallback: str = "hold"
    actuation_offset: tuple[float, float] = (0.0, 0.0)  # seconds, tick -> command acting, drawn per episode
    offset_jitter: float = 0.0  # seconds, U[0, jitter) added per tick

    @property
    def control_steps(self) -> int:
        """m: env steps per tick."""
        return max(1, round(self.control_period / self.sensor_period))

    @property
    def slot_ticks(self) -> int:
        """s: ticks between consecutive worker starts."""
        return slot_ticks(self.inference_ticks, self.num_workers)

    @property
    def worker_stride(self) -> int:
        """Ticks between two starts of the same worker: its pipeline advances once per stride."""
        return self.num_workers * self.slot_ticks

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def slot_ticks(inference_ticks: int, num_workers: int) -> int:
    """Ticks between consecutive worker starts: the spacing of the grid the live arbiter lays
    (`rt_rl.core.grid.make_schedule`, the same code) for N workers and T = D ticks, in whole ticks.
    Where the live spacing is whole (N >= D, or D a multiple of N) the twin's starts are the live
    grid's, tick for tick; where it is a fraction (D / N between two whole ticks) the live completions
    alternate between the two neighbouring strides and the twin takes the longer one."""
    if inference_ticks < 0 or num_workers < 1:
        raise ValueError("need inference_ticks >= 0 and num_workers >= 1")
    grid = make_schedule(
        num_workers, 1.0, max(float(inference_ticks), 1e-6), tick_phase=0.0, not_before=0.0, margin=0.0
    )
    return max(1, math.ceil(grid.spacing - 1e-9))


def env_timestep(task: TaskSpec, frame_skip: int) -> float:
    """env.dt in seconds for `frame_skip` physics steps per env step."""
    env = gym.make(task.gym_id)
    try:
        return float(env.unwrapped.model.opt.timestep) * frame_skip
    finally:
        env.close()


def switch_control(before: np.ndarray, after: np.ndarray, at: int):
    """control(i) of a task step whose command changes from `before` to `after` at physics step `at`."""
    return lambda i: before if i < at else after


class TimingEnv(gym.Env):
    """Simulated-time model of sim -> sensor_ingest -> N staggered workers -> arbiter (see module doc)."""

    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(
        self,
        task: str,
        *,
        frame_skip: int | None = None,
        control_steps: int = 1,
        inference_ticks: int = 0,
        num_workers: int = 1,
        fallback: str = "hold",
        history_length: int = 0,
        obs_mean: Sequence[float] | None = None,
        obs_std: Sequence[float] | None = None,
        episode_steps: int = 1000,
        delay_choices: Sequence[int] | None = None,
        actuation_offset: Sequence[float] = (0.0, 0.0),
        offset_jitter: float = 0.0,
        offset_samples: Sequence[float] | None = None,
    ) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got '{fallback}'")
        if control_steps < 1:
            raise ValueError("control_steps must be >= 1")
        self.spec_task = get_task(task)
        probe = gym.make(task)
        default_fs = int(probe.unwrapped.frame_skip)
        probe.close()
        self.frame_skip = default_fs if frame_skip is None else int(frame_skip)
        self.dt = env_timestep(self.spec_task, self.frame_skip)
        # the shared maker (same as the live sim): episode length given in seconds of physics
        self.env = make_env(self.spec_task, self.frame_skip, episode_seconds=episode_steps * self.dt)
        self.m = control_steps
        self.D = inference_ticks  # this episode's delay (drawn at reset from delay_choices if given)
        self.N = num_workers
        self.s = slot_ticks(inference_ticks, num_workers)  # nominal: does not change with the drawn D
        self.episode_steps = episode_steps
        self.delay_choices = tuple(int(d) for d in delay_choices or ())
        if any(d < 0 for d in self.delay_choices):
            raise ValueError(f"delay_choices must be >= 0, got {list(self.delay_choices)}")
        self.fallback = fallback
        lo, hi = (float(x) for x in actuation_offset)
        if not 0.0 <= lo <= hi or offset_jitter < 0:
            raise ValueError(f"actuation_offset needs 0 <= lo <= hi and jitter >= 0, got {actuation_offset}")
        self.offset_range, self.offset_jitter = (lo, hi), float(offset_jitter)
        self.offset = lo  # this episode's (drawn at reset)
        # measured live: each tick's offset drawn from these (replaces the range and the jitter)
        self.offset_samples = (
            np.asarray(offset_samples, dtype=np.float64) if offset_samples is not None else None
        )
        if self.offset_samples is not None and (
            not len(self.offset_samples) or np.any(self.offset_samples < 0)
        ):
            raise ValueError("offset_samples must be a non-empty list of seconds >= 0")
        self.stepper = SubstepStepper(self.env)
        self.physics_dt = self.stepper.physics_dt
        self.timing = Timing(
            control_period=self.m * self.dt,
            sensor_period=self.dt,
            frame_skip=self.frame_skip,
            inference_ticks=self.D,
            num_workers=self.N,
            fallback=fallback,
            actuation_offset=self.offset_range,
            offset_jitter=self.offset_jitter,
        )
        self.builder = ObservationBuilder(self.spec_task, history_length, obs_mean, obs_std)
        t = self.spec_task
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.builder.size,), np.float32)
        self.action_space = gym.spaces.Box(t.action_low, t.action_high, (t.action_dim,), np.float64)
        self._pending: dict[int, np.ndarray] = {}
        self._last_command = np.zeros(t.action_dim)
        self.tick = 0
        self.slot = 0
        self._obs: np.ndarray | None = None

    # ----- helpers -----
    def _observe(self) -> np.ndarray:
        pos, vel = joint_state(self.env, self.spec_task)
        return self.builder.build(pos, vel)

    def raw_observation(self) -> np.ndarray:
        """Un-normalised task observation (Gymnasium layout) of the current physics state."""
        pos, vel = joint_state(self.env, self.spec_task)
        return self.builder.raw(pos, vel)

    @property
    def worker(self) -> int:
        return self.slot % self.N

    def _info(self) -> dict[str, Any]:
        return {"worker": self.worker, "tick": self.tick, "delay": self.D, "offset": self.offset}

    def trained_timing(self) -> dict[str, Any]:
        """`timing` plus what varies or ends an episode: the record stored in a checkpoint."""
        return self.timing.as_dict() | {
            "delay_choices": list(self.delay_choices or (self.timing.inference_ticks,)),
            "episode_steps": self.episode_steps,
            "episode_seconds": self.episode_steps * self.dt,
            "physics_dt": self.physics_dt,
        }

    # ----- gymnasium API -----
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.env.reset(seed=seed)
        if options and "delay" in options:
            self.D = int(options["delay"])
            if self.D < 0:
                raise ValueError(f"delay must be >= 0, got {self.D}")
        elif self.delay_choices:
            self.D = int(self.np_random.choice(self.delay_choices))
        else:
            self.D = self.timing.inference_ticks
        lo, hi = self.offset_range
        if options and "offset" in options:
            self.offset = float(options["offset"])
        else:
            self.offset = lo if hi == lo else float(self.np_random.uniform(lo, hi))
        self.builder.reset()
        self._pending.clear()
        self._last_command = np.zeros(self.spec_task.action_dim)  # the actuator starts at zero
        self.tick = 0
        self.slot = 0
        self._obs = self._observe()
        return self._obs.copy(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self._obs is not None, "call reset() first"
        t = self.spec_task
        command = np.asarray(action, dtype=np.float64).reshape(t.action_dim)
        command = np.clip(command, t.action_low, t.action_high)
        self._pending[self.tick + self.D] = command  # starts are s >= 1 apart: arrivals never collide
        total, terminated, truncated, ticks = 0.0, False, False, []
        for _ in range(self.s):
            fresh = self._pending.pop(self.tick, None)
            if fresh is not None:
                applied = fresh
            elif self.fallback == "hold":
                applied = self._last_command
            else:
                applied = np.zeros(t.action_dim)
            reward = 0.0
            previous, acts_from = self._last_command, self._acting_step()
            for j in range(self.m):
                first = j * self.frame_skip  # this env step's first physics step within the tick
                if acts_from <= first or np.array_equal(previous, applied):
                    _, r, terminated, truncated, _ = self.env.step(applied)
                elif acts_from >= first + self.frame_skip:
                    _, r, terminated, truncated, _ = self.env.step(previous)
                else:
                    _, r, terminated, truncated, _ = self.stepper.step(
                        switch_control(previous, applied, acts_from - first)
                    )
                reward += float(r)
                if terminated or truncated:
                    break
            self._last_command = applied
            self.builder.record_command(applied)
            obs_before, self._obs = self._obs, self._observe()
            ticks.append(
                {
                    "obs": obs_before,
                    "command": applied.copy(),
                    "fresh": fresh is not None,
                    "acts_from": acts_from,  # physics step of the period the command acts from
                    "reward": reward,
                    "next_obs": self._obs,
                    "terminated": terminated,
                    "truncated": truncated,
                }
            )
            total += reward
            self.tick += 1
            if terminated or truncated:
                break
        self.slot += 1
        info = self._info()
        info["ticks"] = ticks
        return self._obs.copy(), total, terminated, truncated, info

    def _acting_step(self) -> int:
        """The physics step of this tick's period from which its command acts (0: the whole period)."""
        if self.offset_samples is not None:
            offset = float(self.offset_samples[self.np_random.integers(len(self.offset_samples))])
        else:
            offset = self.offset
        if self.offset_samples is None and self.offset_jitter > 0:
            offset += float(self.np_random.uniform(0.0, self.offset_jitter))
        steps = self.m * self.frame_skip
        return min(steps, max(0, math.ceil(offset / self.physics_dt - 1e-9)))

    def close(self) -> None:
        self.env.close()
