"""Schedules: exact identities of the forward process, and agreement with diffusers."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import Schedule, cosine_schedule, linear_schedule, scaled_linear_schedule

SCHEDULES = {"linear": linear_schedule(), "cosine": cosine_schedule(), "scaled_linear": scaled_linear_schedule()}


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(sorted(SCHEDULES)), t=st.integers(-1, 999), seed=st.integers(0, 2**31 - 1))
def test_predict_x0_inverts_q_sample(kind, t, seed):
    s = SCHEDULES[kind]
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    x_t = s.q_sample(x0, t, eps)
    # dividing by sqrt(alpha_bar) amplifies rounding by up to 1/sqrt(alpha_bar_999) ~ 160
    torch.testing.assert_close(s.predict_x0(x_t, t, eps), x0, rtol=0, atol=1e-12 / s.at(t).sqrt().item())
    if t >= 0:
        torch.testing.assert_close(s.predict_eps(x_t, t, x0), eps, rtol=0, atol=1e-12 / (1 - s.at(t)).sqrt().item())


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(SCHEDULES)), t=st.integers(0, 999), seed=st.integers(0, 2**31 - 1))
def test_v_prediction_round_trips(kind, t, seed):
    s = SCHEDULES[kind]
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(2, 8, generator=g, dtype=torch.float64)
    x_t = s.q_sample(x0, t, eps)
    v = s.target(x0, t, eps, "v")
    torch.testing.assert_close(s.eps_from(v, x_t, t, "v"), eps)
    torch.testing.assert_close(s.eps_from(x0, x_t, t, "x0"), eps, rtol=1e-6, atol=1e-6)


def test_q_sample_has_the_right_moments():
    s = linear_schedule()
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    eps = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = s.q_sample(x0, 500, eps)
    a = s.at(500).item()
    assert abs(x.mean().item() - a**0.5 * 0.7) < 0.01
    assert abs(x.var().item() - (1 - a)) < 0.01


def test_clean_timestep_has_alpha_bar_one_and_snr_decreases():
    s = cosine_schedule()
    assert s.at(-1).item() == 1.0
    snr = s.snr(torch.arange(1000))
    assert (snr[1:] < snr[:-1]).all()


@pytest.mark.parametrize("kind, diffusers_kwargs", [
    ("linear", dict(beta_schedule="linear")),
    ("scaled_linear", dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)),
    ("cosine", dict(beta_schedule="squaredcos_cap_v2")),
])
def test_alpha_bar_matches_diffusers(kind, diffusers_kwargs):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, **diffusers_kwargs).alphas_cumprod.double()
    torch.testing.assert_close(SCHEDULES[kind].alpha_bar, ref, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("n", [1, 7, 20, 50, 1000])
def test_timesteps_match_diffusers(spacing, n):
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    ref.set_timesteps(n)
    ts = linear_schedule().timesteps(n, spacing)
    assert ts.tolist() == ref.timesteps.tolist()


def test_bad_schedule_inputs_are_refused_with_reasons():
    s = linear_schedule()
    with pytest.raises(ValueError, match=r"-1\.\.999"):
        s.at(1000)
    with pytest.raises(ValueError, match=r"-1\.\.999"):
        s.q_sample(torch.zeros(2, 3), torch.tensor([0, -2]), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="integers"):
        s.at(torch.tensor(0.5))
    with pytest.raises(ValueError, match="same shape"):
        s.q_sample(torch.zeros(2, 3), 5, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"num_steps must be an integer in 1\.\.1000"):
        s.timesteps(0)
    with pytest.raises(ValueError, match="spacing"):
        s.timesteps(10, "karras")
    with pytest.raises(ValueError, match="decrease"):
        Schedule(torch.tensor([0.5, 0.9]))
    with pytest.raises(ValueError, match="prediction"):
        s.eps_from(torch.zeros(1), torch.zeros(1), 3, "score")


@pytest.mark.parametrize("make", [linear_schedule, scaled_linear_schedule])
@pytest.mark.parametrize("start, end", [(0.02, 0.001), (0.0, 0.01), (0.001, 1.5)])
def test_linear_schedules_refuse_betas_out_of_order_or_range(make, start, end):
    # reversed betas would give a schedule that adds noise fastest at the start, and no error anywhere else
    with pytest.raises(ValueError, match=rf"need 0 < beta_start < beta_end < 1, got {start}, {end}"):
        make(beta_start=start, beta_end=end)
