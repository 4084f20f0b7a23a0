"""Training: the loss falls, and an interrupted run resumes to exactly the same weights."""

import pytest
import torch

from minidiff import linear_schedule
from minidiff.course.recipes.toy import toy2d_data
from minidiff.course.train import TrainConfig, lr_factor, train
from minidiff.world.toy import ToyMLP

S = linear_schedule()


def fresh_net():
    torch.manual_seed(0)
    return ToyMLP(width=32, depth=2)


def test_interrupted_training_resumes_exactly(tmp_path):
    config = TrainConfig(steps=12, batch_size=32, lr=1e-3, warmup=3, checkpoint_every=5)
    data = toy2d_data(32, seed=0)
    straight = train(fresh_net(), data, S, config, tmp_path / "straight", progress=False)

    # the same run, stopped by an error at step 7 (its last checkpoint is step 5), then restarted
    cut = tmp_path / "cut"
    net = fresh_net()

    class Stop(Exception):
        pass

    def data_until_7(step):
        if step == 7:
            raise Stop
        return data(step)

    with pytest.raises(Stop):
        train(net, data_until_7, S, config, cut, progress=False)
    assert torch.load(cut / "train_state.pt", weights_only=True)["step"] == 5
    resumed = train(fresh_net(), data, S, config, cut, progress=False)
    for a, b in zip(straight.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.losses == straight.losses


def test_loss_falls_on_the_toy(tmp_path):
    config = TrainConfig(steps=300, batch_size=256, lr=2e-3, warmup=20, checkpoint_every=300)
    result = train(fresh_net(), toy2d_data(256, seed=0), S, config, tmp_path, progress=False)
    first, last = sum(result.losses[:30]) / 30, sum(result.losses[-30:]) / 30
    assert last < 0.8 * first


def test_resuming_with_another_config_is_refused(tmp_path):
    data = toy2d_data(8, seed=0)
    train(fresh_net(), data, S, TrainConfig(steps=2, batch_size=8, checkpoint_every=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"different TrainConfig \(fields \['lr'\]\)"):
        train(fresh_net(), data, S, TrainConfig(steps=2, batch_size=8, checkpoint_every=1, lr=1.0), tmp_path, progress=False)


def test_learning_rate_warms_up_holds_and_cools_down():
    config = TrainConfig(steps=100, warmup=10, cooldown=20)
    factors = [lr_factor(config, s) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0  # warm-up: 1/10 .. 10/10
    assert all(f == 1.0 for f in factors[9:81])  # constant until the cool-down begins at step 80
    assert factors[90] == pytest.approx(0.5) and factors[99] == pytest.approx(0.05)  # linear to 0 at step 100
    assert lr_factor(TrainConfig(steps=100, warmup=10), 99) == 1.0  # no cool-down by default


def test_a_run_may_get_a_cooldown_or_more_steps_until_its_cooldown_begins(tmp_path):
    data = toy2d_data(8, seed=0)
    train(fresh_net(), data, S, TrainConfig(steps=4, batch_size=8, warmup=1, checkpoint_every=2), tmp_path, progress=False)
    # extended and given a cool-down that starts after step 4: the first 4 steps are the same run
    train(fresh_net(), data, S, TrainConfig(steps=10, batch_size=8, warmup=1, checkpoint_every=2, cooldown=5), tmp_path, progress=False)
    # shortening it now would change steps already taken (the cool-down began at step 5)
    with pytest.raises(ValueError, match="cool-down has begun"):
        train(fresh_net(), data, S, TrainConfig(steps=12, batch_size=8, warmup=1, checkpoint_every=2, cooldown=5), tmp_path, progress=False)


def test_the_command_line_trains_on_the_device_it_is_given_and_refuses_one_it_lacks(tmp_path, capsys):
    from minidiff.__main__ import main
    from minidiff.course.train import hardware, training_device

    assert main(["train", "toy2d", "--out", str(tmp_path), "--steps", "2", "--device", "cpu"]) == 0
    assert torch.load(tmp_path / "train_state.pt", weights_only=True)["step"] == 2
    assert hardware(torch.device("cpu")).endswith("CPU")
    with pytest.raises(SystemExit):
        main(["train", "toy2d", "--out", str(tmp_path), "--device", "tpu"])
    assert "unknown device 'tpu': use cpu, cuda, cuda:N or mps" in capsys.readouterr().err
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert state["device"] == "cpu"
    torch.save({**state, "device": "cuda"}, tmp_path / "train_state.pt")  # as if begun on a GPU
    with pytest.raises(ValueError, match="was trained on cuda, and a run resumes on the device it began on: pass --device cuda"):
        main(["train", "toy2d", "--out", str(tmp_path), "--steps", "4"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda' is not available on this machine \(available: cpu"):
            training_device("cuda")
