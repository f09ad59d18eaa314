"""DAgger as DextrAH-RGB's release runs it: the student drives, the teacher labels every step.

Every world steps with an action sampled from the student's distribution (clamped to [-1, 1]);
the teacher, frozen, gives the mean and sigma it would act with. The loss of one step, averaged
over worlds, is

    |(mu_s - mu_t) / sigma_t|  +  |sigma_s - sigma_t|  +  aux_weight * |p_hat - p_object|

with plain (not squared) L2 norms: a distance of the means weighted by the teacher's confidence,
the distance of the sigmas, and the auxiliary head's error on the object position. Every
``seq_length`` steps the mean loss of those steps is backpropagated through them (the LSTM state is
detached after), gradients are clipped and Adam steps. An optional schedule lets the teacher's
mean action drive a world instead, with a probability that decays per iteration.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch

from dexgrasp_cli.distill.settings import DistillSettings
from dexgrasp_cli.learner.rollout_stats import RolloutStats

AUX_TARGET = "object_pos"
"""The observation the auxiliary head learns: the object's position in the robot frame, metres."""


class DaggerLoss(NamedTuple):
    total: torch.Tensor
    imitation: torch.Tensor
    sigma: torch.Tensor
    aux: torch.Tensor
    """Mean object-position error, metres."""


def dagger_loss(mu_s, sigma_s, mu_t, sigma_t, position, target, aux_weight: float) -> DaggerLoss:
    """One step's loss (see the module docstring); every argument is (worlds, size)."""
    imitation = torch.linalg.vector_norm((mu_s - mu_t) / sigma_t, dim=-1).mean()
    sigma = torch.linalg.vector_norm(sigma_s - sigma_t, dim=-1).mean()
    aux = torch.linalg.vector_norm(position - target, dim=-1).mean()
    return DaggerLoss(imitation + sigma + aux_weight * aux, imitation, sigma, aux)


class Dagger:
    """The student, its optimizer and the worlds' running state between iterations."""

    def __init__(self, student, teacher, vecenv, settings: DistillSettings, seed: int):
        self.student, self.teacher, self.vecenv, self.settings = student, teacher, vecenv, settings
        self.device = vecenv.device
        self.optimizer = torch.optim.Adam(student.parameters(), lr=settings.learning_rate, eps=1e-8)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        """Draws the student's actions and the teacher-action schedule: the same in every layout."""
        self.obs: dict[str, torch.Tensor] | None = None
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def start(self) -> None:
        """New episodes in every world (at the current ADR level), staggered, and a fresh memory."""
        self.obs = self.vecenv.reset()["obs"]
        self.vecenv.stagger_episode_ends()
        self.state = self.student.initial_state(self.vecenv.num_envs, self.device)
        self.teacher.episodes_ended(torch.ones(self.vecenv.num_envs, dtype=torch.bool, device=self.device))

    def iteration(self, index: int) -> dict:
        """``settings.horizon`` steps of every world, a gradient step every ``seq_length``; the numbers to log."""
        s, student = self.settings, self.student
        beta = s.teacher_action_probability(index)
        start = time.perf_counter()
        window: list[torch.Tensor] = []
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)  # total, imitation, sigma, aux
        grad_norms: list[torch.Tensor] = []
        for _ in range(s.horizon):
            obs = self.obs
            seen = {key: obs[key] for key in student.obs_keys}
            target = obs[AUX_TARGET]
            if s.seq_length > 1:  # the vecenv's slots are rewritten two steps on; the graph needs these longer
                seen, target = {key: value.clone() for key, value in seen.items()}, target.clone()
            out = student(seen, self.state)
            mu_t, sigma_t = self.teacher.labels(obs)
            loss = dagger_loss(out.mu, out.sigma, mu_t, sigma_t, out.object_pos, target, s.aux_weight)
            sums += torch.stack([part.detach().double() for part in loss])
            window.append(loss.total)
            state = out.state
            if len(window) == s.seq_length:
                grad_norms.append(self._gradient_step(window))
                window, state = [], tuple(part.detach() for part in state)
            actions = self._actions(out.mu.detach(), out.sigma.detach(), mu_t, beta)
            observed, _, dones, _ = self.vecenv.step(actions)
            self.obs = observed["obs"]
            done = dones.bool()
            keep = (~done).to(state[0].dtype).view(1, -1, 1)
            self.state = (state[0] * keep, state[1] * keep)  # not in place: the state may be in the graph
            self.teacher.episodes_ended(done)
        elapsed = time.perf_counter() - start
        stats: RolloutStats = self.vecenv.pop_stats()
        total, imitation, sigma, aux = (sums / s.horizon).tolist()
        return {
            "loss": total, "imitation_loss": imitation, "sigma_loss": sigma, "aux_error_cm": 100.0 * aux,
            "grad_norm": float(torch.stack(grad_norms).mean()), "teacher_action_prob": beta,
            "env_steps_per_s": stats.env_steps / elapsed, "seconds": elapsed, "iteration_env_steps": stats.env_steps,
            "success_rate": stats.success_fraction, "episode_success": stats.episode_mean("success"),
            "episode_lift_height": stats.episode_mean("lift_height"), "episodes": stats.episodes,
            "sim_step_seconds": stats.sim_seconds, "obs_wait_seconds": stats.wait_seconds,
        }  # fmt: skip

    def _gradient_step(self, window: list[torch.Tensor]) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        torch.stack(window).mean().backward()
        norm = torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.settings.grad_norm)
        self.optimizer.step()
        return norm.detach()

    def _actions(self, mu: torch.Tensor, sigma: torch.Tensor, teacher_mu: torch.Tensor, beta: float) -> torch.Tensor:
        """A draw from the student's distribution, or (with probability ``beta``) the teacher's mean."""
        noise = torch.randn(mu.shape, generator=self.generator, device=self.device)
        actions = mu + sigma * noise
        if beta > 0:
            teacher_acts = torch.rand(mu.shape[0], generator=self.generator, device=self.device) < beta
            actions = torch.where(teacher_acts[:, None], teacher_mu, actions)
        return actions.clamp(-1.0, 1.0)

    def state_dict(self) -> dict:
        return {"student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
