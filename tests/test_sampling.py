"""Samplers checked against exact answers from a Gaussian mixture's optimal denoiser."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import Recorder, chain, ddim_step, ddpm_step, invert_ddim, linear_schedule, sample_ddim, sample_ddpm
from minidiff.world.toy import GaussianMixture, ring_mixture

SCHEDULE = linear_schedule()


def mixture64() -> GaussianMixture:
    m = ring_mixture(std=0.2)
    return GaussianMixture(m.means.double(), m.stds.double(), m.weights.double(), m.labels)


def test_optimal_denoiser_is_tweedies_formula_for_one_gaussian():
    # one Gaussian N(mu, s^2): E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a), in closed form
    mu = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    g = GaussianMixture(mu, torch.tensor([0.5], dtype=torch.float64), torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.long))
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.full((5,), 400)
    a = SCHEDULE.at(400).item()
    expected = (1 - a) ** 0.5 * (x - a**0.5 * mu) / (a * 0.25 + 1 - a)
    torch.testing.assert_close(g.denoiser(SCHEDULE)(x, t), expected)


def test_ddpm_samples_match_the_mixture_moments():
    mix = mixture64()
    noise = torch.randn(8000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = sample_ddpm(mix.denoiser(SCHEDULE), noise, SCHEDULE.timesteps(1000), SCHEDULE, generator=torch.Generator().manual_seed(1))
    mean, cov = mix.moments()
    # standard error of a mean of 8000 draws with variance ~0.54 is ~0.008
    torch.testing.assert_close(x.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0)
    # and every sample lands near one of the modes (radius 1)
    assert ((x.norm(dim=1) - 1).abs() < 0.8).float().mean() > 0.99


def test_ddim_sampling_then_inversion_returns_the_start():
    mix = mixture64()
    model = mix.denoiser(SCHEDULE)
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = {}
    for n in (50, 200, 1000):
        ts = SCHEDULE.timesteps(n)
        x0 = sample_ddim(model, z, ts, SCHEDULE)
        traj = invert_ddim(model, x0, ts, SCHEDULE)
        assert traj.shape == (n + 1, 64, 2) and torch.equal(traj[-1], x0)
        errors[n] = (traj[0] - z).abs()
    # with the exact denoiser the only error is the inversion's eps(x_{t-1}, t) ~ eps(x_t, t):
    # small at 1000 steps, and first order, so 20x the steps gives ~20x less error
    assert errors[1000].max() < 0.03 and errors[1000].mean() < 0.005
    assert 10 < errors[50].mean() / errors[1000].mean() < 30
    assert errors[50].mean() > errors[200].mean() > errors[1000].mean()


def test_inversion_trajectory_is_aligned_with_the_sampler():
    mix = mixture64()
    model = mix.denoiser(SCHEDULE)
    ts = SCHEDULE.timesteps(20)
    x0, _ = mix.sample(4, generator=torch.Generator().manual_seed(3))
    traj = invert_ddim(model, x0, ts, SCHEDULE)
    rec = Recorder()
    sample_ddim(model, traj[0], ts, SCHEDULE, on_step=rec)
    assert rec.timesteps == ts.tolist()[1:] + [-1]
    # each sampled latent sits near the inversion's latent at the same timestep
    assert (rec.x - traj[1:]).abs().max() < 0.2


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 999), seed=st.integers(0, 2**31 - 1))
def test_ddim_with_eta_one_is_the_ddpm_posterior_step(t, seed):
    g = torch.Generator().manual_seed(seed)
    x, eps, noise = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    a_t, a_prev = SCHEDULE.at(t), SCHEDULE.at(t - 1)
    ddim, x0_ddim = ddim_step(x, eps, a_t, a_prev, eta=1.0, noise=noise)
    ddpm, x0_ddpm = ddpm_step(x, eps, a_t, a_prev, noise=noise)
    torch.testing.assert_close(ddim, ddpm, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x0_ddim, x0_ddpm)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 30), eta=st.sampled_from([0.0, 0.5, 1.0]), sampler=st.sampled_from(["ddim", "ddpm"]))
def test_a_hook_returning_none_changes_nothing(n, eta, sampler):
    model = mixture64().denoiser(SCHEDULE)
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    ts = SCHEDULE.timesteps(n)

    def run(hook):
        g = torch.Generator().manual_seed(7)
        if sampler == "ddim":
            return sample_ddim(model, z, ts, SCHEDULE, eta=eta, on_step=hook, generator=g)
        return sample_ddpm(model, z, ts, SCHEDULE, on_step=hook, generator=g)

    seen = []
    assert torch.equal(run(None), run(lambda s: seen.append(s.index)))
    assert seen == list(range(n))


def test_a_hook_can_replace_the_sample():
    model = mixture64().denoiser(SCHEDULE)
    z = torch.randn(8, 2, dtype=torch.float64)
    # pinning the first coordinate to 0 after every step: the result obeys the constraint exactly
    def pin(state):
        out = state.x_next.clone()
        out[:, 0] = 0.0
        return out

    x = sample_ddim(model, z, SCHEDULE.timesteps(20), SCHEDULE, on_step=pin)
    assert (x[:, 0] == 0).all()
    # chained hooks: the second sees the first's replacement
    seen = []
    sample_ddim(model, z, SCHEDULE.timesteps(5), SCHEDULE, on_step=chain(pin, lambda s: seen.append(s.x_next[:, 0].abs().max().item())))
    assert seen == [0.0] * 5


def test_same_seed_same_samples_different_seed_different_samples():
    model = mixture64().denoiser(SCHEDULE)
    z = torch.randn(8, 2, dtype=torch.float64)
    ts = SCHEDULE.timesteps(25)
    a = sample_ddpm(model, z, ts, SCHEDULE, generator=torch.Generator().manual_seed(1))
    b = sample_ddpm(model, z, ts, SCHEDULE, generator=torch.Generator().manual_seed(1))
    c = sample_ddpm(model, z, ts, SCHEDULE, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_sampler_inputs_are_refused_with_reasons():
    model = mixture64().denoiser(SCHEDULE)
    z = torch.randn(4, 2, dtype=torch.float64)
    for eta in (-0.1, 1.5):  # beyond 1 DDIM's direction term would be clipped to zero without a word
        with pytest.raises(ValueError, match=rf"eta must be in \[0, 1\].*got {eta}"):
            sample_ddim(model, z, SCHEDULE.timesteps(10), SCHEDULE, eta=eta)
    with pytest.raises(ValueError, match="x holds NaN or infinity"):
        sample_ddim(model, torch.full_like(z, float("nan")), SCHEDULE.timesteps(10), SCHEDULE)
    with pytest.raises(ValueError, match="x must be a float tensor, got dtype torch.int64"):
        sample_ddpm(model, torch.zeros(4, 2, dtype=torch.long), SCHEDULE.timesteps(10), SCHEDULE)
    with pytest.raises(ValueError, match="strictly descending"):
        sample_ddim(model, z, [10, 20, 30], SCHEDULE)
    with pytest.raises(ValueError, match=r"-1\.\.999"):
        sample_ddim(model, z, [1200, 10], SCHEDULE)
    with pytest.raises(ValueError, match="non-empty"):
        sample_ddpm(model, z, [], SCHEDULE)
    with pytest.raises(ValueError, match="must not contain -1"):
        invert_ddim(model, z, [10, -1], SCHEDULE)
    with pytest.raises(ValueError, match="denoiser returned shape"):
        sample_ddim(lambda x, t: x[:, :1], z, [10], SCHEDULE)
    with pytest.raises(ValueError, match="on_step returned shape"):
        sample_ddim(model, z, [10], SCHEDULE, on_step=lambda s: s.x_next[:2])
