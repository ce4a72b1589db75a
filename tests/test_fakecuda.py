"""tests/fakecuda.py: CPU tensors posing as CUDA ones catch device mix-ups without a GPU."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fakecuda import CUDA, fake_cuda, notebook_function

SAME_DEVICE = "Expected all tensors to be on the same device"


def small_cnn() -> nn.Sequential:
    """(N, 3, 8, 8) -> (N, 3)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def assert_fake(t: torch.Tensor) -> None:
    assert t.device == CUDA and t.is_cuda and not t.is_cpu and t.get_device() == 0 and ".cuda." in t.type()


def assert_cpu(t: torch.Tensor) -> None:
    assert t.device == torch.device("cpu") and not t.is_cuda and t.is_cpu and ".cuda." not in t.type()


@pytest.mark.parametrize("move", [lambda t: t.to("cuda"), lambda t: t.to(torch.device("cuda")),
                                  lambda t: t.to("cuda:0"), lambda t: t.cuda(), lambda t: t.to("cuda", torch.float64),
                                  lambda t: t.to(device="cuda", non_blocking=True),
                                  lambda t: t.to(torch.zeros(1).cuda()), lambda t: t.type_as(torch.zeros(1).cuda())],
                         ids=["str", "device", "cuda:0", "cuda()", "dtype", "kwargs", "to(other)", "type_as"])
def test_moves_copy_to_fake_cuda_and_back(move):
    x = torch.randn(2, 3)
    with fake_cuda() as mode:
        y = move(x)
        assert_fake(y)
        assert_cpu(x)  # the source stays on the CPU: .to("cuda") copies
        assert mode.is_fake(y) and not mode.is_fake(x)
        assert_fake(y[1:])  # a view shares the storage, hence the device
        assert_fake(y.to(torch.float16))
        assert y.to("cuda") is y and y.to(y) is y  # already there: no copy, as on a GPU
        for back in (y.cpu(), y.to("cpu"), y.to(x)):
            assert_cpu(back)
            assert torch.equal(back.double(), x.double())


@pytest.mark.parametrize("make", [
    lambda d: torch.zeros(2, device=d), lambda d: torch.ones(2, 2, device=d), lambda d: torch.empty(3, device=d),
    lambda d: torch.randn(2, device=d), lambda d: torch.rand(2, device=d),
    lambda d: torch.randint(0, 5, (3,), device=d),
    lambda d: torch.arange(4, device=d), lambda d: torch.full((2,), 7.0, device=d), lambda d: torch.eye(2, device=d),
    lambda d: torch.tensor([1, 2], device=d), lambda d: torch.linspace(0, 1, 5, device=d),
    lambda d: torch.zeros_like(torch.ones(2), device=d), lambda d: torch.ones(2).new_zeros(3, device=d)])
def test_factories_with_a_cuda_device(make):
    with fake_cuda():
        assert_fake(make("cuda"))
        assert_fake(make(CUDA))
        assert_cpu(make("cpu"))


def test_like_and_new_follow_their_input():
    with fake_cuda():
        y = torch.ones(2, 3).cuda()
        for t in (torch.zeros_like(y), torch.randn_like(y), y.new_zeros(4), y.new_full((2,), 1.0), y.new_tensor([1.0])):
            assert_fake(t)
        assert_cpu(torch.zeros_like(y, device="cpu"))


def test_mixing_raises_and_a_moved_batch_matches_the_cpu():
    torch.manual_seed(0)
    model, x = small_cnn().eval(), torch.randn(5, 3, 8, 8)
    expected = model(x)
    with fake_cuda():
        model.to("cuda")
        assert all(t.is_cuda for t in [*model.parameters(), *model.buffers()])
        with pytest.raises(RuntimeError, match=f"{SAME_DEVICE}.*conv2d"):
            model(x)
        with pytest.raises(RuntimeError, match=f"{SAME_DEVICE}.*linear"):
            model[-1](x.flatten(1)[:, :144])
        out = model(x.to("cuda"))
        assert_fake(out)
        assert_fake(out.argmax(1))
        assert torch.equal(out.cpu(), expected)
        with pytest.raises(RuntimeError, match=SAME_DEVICE):
            out + torch.ones(5, 3)
        with pytest.raises(RuntimeError, match=SAME_DEVICE):
            torch.cat([out, torch.ones(1, 3)])


def test_cpu_scalars_numpy_item_and_cpu():
    x = torch.arange(6.0).reshape(2, 3)
    with fake_cuda():
        y = x.cuda()
        assert_fake(y * torch.tensor(2.0) + torch.tensor(1.0))  # 0-dim CPU tensors are fine, as on a GPU
        s = torch.tensor(1.0)
        assert_cpu(s.expand_as(y))  # a view of a CPU tensor stays on the CPU...
        assert_cpu(s)  # ...and meeting a CUDA tensor does not move it
        with pytest.raises(RuntimeError, match=SAME_DEVICE):
            y * torch.tensor([2.0])  # one dimension is not
        with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
            y.numpy()
        with pytest.raises(TypeError, match="can't convert cuda:0"):
            y.sum(0).__array__()
        assert y.sum().item() == 15.0 and y[1].tolist() == [3.0, 4.0, 5.0]
        c = y.cpu()
        assert type(c) is torch.Tensor and c.device == torch.device("cpu") and not c.is_cuda
        assert c.numpy().sum() == 15.0


def test_freed_storage_is_not_mistaken_for_fake_cuda():
    with fake_cuda() as mode:
        for _ in range(50):  # the allocator hands the freed block straight back
            y = torch.randn(256).cuda()
            del y
            assert not torch.randn(256).is_cuda
        assert len(mode._fake) < 5  # tags go with their storage


def test_state_dict_deepcopy_no_grad_and_bn():
    torch.manual_seed(0)
    with fake_cuda():
        model = small_cnn().cuda()
        with torch.no_grad():
            model(torch.randn(4, 3, 8, 8, device="cuda"))  # train mode: BN running stats update
        bn = model[1]
        assert_fake(bn.running_mean)
        assert bn.num_batches_tracked.item() == 1 and bn.running_mean.abs().sum().item() > 0
        clone = copy.deepcopy(model)
        state = model.state_dict()
        assert all(t.is_cuda for t in [*clone.parameters(), *clone.buffers(), *state.values()])
        cpu_state = {k: v.cpu() for k, v in state.items()}
        fresh = small_cnn().cuda()
        fresh.load_state_dict(cpu_state)  # copy_ from the CPU is legal
        assert all(torch.equal(a.cpu(), b) for a, b in zip(fresh.state_dict().values(), cpu_state.values()))
        assert all(t.is_cuda for t in fresh.state_dict().values())
        assert_cpu(fresh.cpu()[0].weight)


def test_torch_load_with_a_cuda_map_location(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2), "n": [torch.zeros(3)]}, path)
    with fake_cuda():
        loaded = torch.load(path, map_location="cuda")
        assert_fake(loaded["w"])
        assert_fake(loaded["n"][0])
        assert_fake(torch.load(path, map_location=torch.device("cuda"), weights_only=True)["w"])
        assert_cpu(torch.load(path, map_location="cpu")["w"])
        assert_cpu(torch.load(path)["w"])


def train(device: str, steps: int = 3) -> dict[str, torch.Tensor]:
    """A few Adam steps of ``small_cnn`` on one fixed batch; the final state on the CPU."""
    torch.manual_seed(0)
    model = small_cnn().to(device)
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 3, (6,))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        assert all(p.grad.device.type == device for p in model.parameters())
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
    assert all(s.device.type == device for st in opt.state.values() for s in st.values() if s.dim() > 0)
    return {k: v.cpu() for k, v in model.state_dict().items()}


def small_cnn_init() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return small_cnn().state_dict()


def test_training_on_fake_cuda_matches_the_cpu_exactly():
    expected = train("cpu")
    with fake_cuda():
        got = train("cuda")
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    assert not torch.equal(expected["0.weight"], small_cnn_init()["0.weight"])  # it did train


def test_sgd_with_momentum_and_cpu_gradients_of_cpu_leaves():
    with fake_cuda():
        w = torch.zeros(3, requires_grad=True)
        x = torch.ones(3, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        for _ in range(2):
            loss = (w.cuda() * x.cuda()).sum()  # CPU leaves, used on the (fake) GPU
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert_cpu(w.grad)
        assert_cpu(x.grad)
        assert torch.allclose(w, torch.full((3,), -0.29))


def test_the_context_restores_everything():
    available, stream, load = torch.cuda.is_available(), torch.accelerator.current_stream, torch.load
    with pytest.raises(ZeroDivisionError):
        with fake_cuda():
            assert torch.cuda.is_available() and torch.cuda.device_count() == 1
            assert torch.accelerator.is_available()
            assert torch._C._len_torch_function_stack() == 1
            y = torch.ones(2).cuda()
            1 / 0
    assert torch.cuda.is_available() == available
    assert torch.accelerator.current_stream is stream and torch.load is load
    assert torch._C._len_torch_function_stack() == 0
    assert not y.is_cuda and y.numpy().sum() == 2.0  # outside, it is the CPU tensor it always was


def test_notebook_function_reads_only_the_def(tmp_path):
    nb = tmp_path / "nb.py"
    nb.write_text("from __future__ import annotations\nraise SystemExit('the notebook must not run')\n\n"
                  "def f(x):\n    return x + 1\n\ndef f(x: Undefined) -> int:  # the file's __future__ import applies\n"
                  "    return x + 2\n")
    ns: dict = {}
    assert notebook_function(nb, "f", ns)(1) == 3 and ns["f"](1) == 3  # the last definition, as after a run
    with pytest.raises(LookupError, match="no top-level function 'g'"):
        notebook_function(nb, "g", {})


def test_a_whole_process_can_pose_as_a_cuda_machine():
    """``tools/run_notebooks.py --fake-cuda``: tests/fakecuda_site/sitecustomize.py puts every kernel under
    fake_cuda() when COURSE_FAKE_CUDA=1, so a notebook takes its CUDA paths and a mix-up raises."""
    import os
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "assert torch.cuda.is_available() and torch.ones(1).cuda().is_cuda\n"
            "net = torch.nn.Linear(2, 2).to('cuda')\n"
            "assert net(torch.ones(1, 2).cuda()).is_cuda\n"
            "try:\n    net(torch.ones(1, 2))\nexcept RuntimeError as err:\n    print(err)\nelse:\n    sys.exit(3)\n")
    site = Path(__file__).resolve().parent / "fakecuda_site"
    env = {**os.environ, "COURSE_FAKE_CUDA": "1", "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "fake CUDA: a CPU tensor met a CUDA one" in done.stdout, done.stderr
    env["COURSE_FAKE_CUDA"] = "0"  # without the switch, nothing is patched
    plain = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert plain.stdout.strip() == str(torch.cuda.is_available())
