"""course_lib's device rule (see ``course_lib/__init__.py``), and the notebooks' own helpers, on a machine
without a GPU: under ``fake_cuda()`` the model poses as a CUDA model and every input stays on the CPU, as a
student's tensors often do on Colab.  Each function must run, give the values of a plain CPU run, and put its
result where its docstring says (CPU tensors, Python floats).  A helper that feeds CPU tensors to the model
fails here exactly as it would on a GPU (the ex3 crash on Colab was one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from course_lib import adaptation, config, distill, loops, meta, models, zoo
from fakecuda import fake_cuda, notebook_function

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int = 6, c: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def _episode() -> meta.Episode:
    g = torch.Generator().manual_seed(1)
    return meta.Episode(torch.rand(6, 1, 28, 28, generator=g), torch.arange(3).repeat_interleave(2),
                        torch.rand(9, 1, 28, 28, generator=g), torch.arange(3).repeat_interleave(3), torch.arange(3))


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return models.cifar_resnet(20, pretrained=False, num_classes=4).eval()


def _conv4() -> nn.Module:
    torch.manual_seed(0)
    return meta.conv4(3, channels=8)


def _dann() -> nn.Module:
    torch.manual_seed(0)
    return adaptation.DANN(num_classes=10, input_shape=(3, 28, 28), hidden=8)


LABELS = torch.tensor([0, 1, 2, 3, 0, 1])
# name -> (model factory, call(model) with CPU inputs)
CASES: dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module], object]]] = {
    "loops.extract": (_resnet, lambda m: loops.extract(m.features, TensorDataset(_images(), LABELS))),
    "loops.extract(loader)": (_resnet, lambda m: loops.extract(m, loops.make_loader(TensorDataset(_images(), LABELS),
                                                                                    4))),
    "loops.predict": (_resnet, lambda m: loops.predict(m, _images())),
    "loops.evaluate_accuracy": (_resnet, lambda m: loops.evaluate_accuracy(m, _images(), LABELS)),
    "loops.train_classifier": (_resnet, lambda m: loops.train_classifier(m, _images(), LABELS, 1, 1e-3, 4,
                                                                         progress=False)["train_loss"]),
    "zoo.source_outputs": (_resnet, lambda m: zoo.source_outputs(m, _images())),
    "distill.teacher_logits": (_resnet, lambda m: distill.teacher_logits(m, _images())),
    "DANN.embed": (_dann, lambda m: loops.predict(m.embed, _images(size=28))),
    "DANN.classify": (_dann, lambda m: loops.evaluate_accuracy(m.classify, _images(size=28), LABELS)),
    "meta.adapted_accuracy": (_conv4, lambda m: meta.adapted_accuracy(m, _episode(), steps=1, lr=0.1)),
    "meta.episode_accuracies": (_conv4, lambda m: meta.episode_accuracies(m, [_episode()], steps=1, lr=0.1)),
    "meta.prototype_accuracy": (_conv4, lambda m: meta.prototype_accuracy(meta.PrototypeTeacher(m[:-1]), [_episode()])),
    "distill.time_inference": (_resnet, lambda m: type(distill.time_inference(m, _images(), repeats=1))),
}


def _where(result: object) -> object:
    """The result with every tensor replaced by (its device type, its values) and floats kept."""
    if isinstance(result, torch.Tensor):
        return result.device.type, result.tolist()
    if isinstance(result, (tuple, list)):
        return [_where(r) for r in result]
    if isinstance(result, dict):
        return {k: _where(v) for k, v in result.items()}
    return result


@pytest.mark.parametrize("name", sorted(CASES))
def test_course_lib_computes_on_the_models_device_and_returns_cpu_results(name):
    build, call = CASES[name]
    expected = _where(call(build()))
    with fake_cuda():
        model = build().to("cuda")
        got = _where(call(model))
        assert config.device_of(model).type == "cuda"
    assert "cuda" not in repr(got), f"{name} returned a CUDA tensor; the rule says CPU"
    assert _same(got, expected), (got, expected)


def _same(a: object, b: object) -> bool:
    """Equal structure and strings, numbers within float32 rounding."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == pytest.approx(b, rel=1e-5, abs=1e-6)
    return a == b


def test_device_of():
    assert config.device_of(nn.Linear(2, 2)) == torch.device("cpu")
    assert config.device_of(nn.ReLU()) == torch.device("cpu")  # no parameter, no buffer
    with fake_cuda():
        assert config.device_of(nn.BatchNorm1d(2, affine=False).to("cuda")).type == "cuda"  # buffers only


def test_ex3_domain_head_accuracy_runs_on_the_models_device():
    """The Colab crash: ex3's helper fed CPU images to a DANN on the GPU. Read from the notebook, not run."""
    import course_lib

    helper = notebook_function(ROOT / "solutions" / "ex3_dann_sweep.py", "domain_head_accuracy",
                               {"torch": torch, "adaptation": adaptation, "course_lib": course_lib})
    xs, xt = _images(4, size=28), _images(3, size=28, seed=1)
    expected = helper(_dann(), xs, xt)
    with fake_cuda():
        assert helper(_dann().to("cuda"), xs, xt) == expected


def test_the_checker_catches_the_original_ex3_helper():
    """The helper as it was before the fix (no move to the model's device) fails under fake_cuda()."""
    def before_the_fix(model: adaptation.DANN, xs: torch.Tensor, xt: torch.Tensor) -> float:
        model.eval()
        hits = (model(xs)[1].argmax(1) == 0).sum() + (model(xt)[1].argmax(1) == 1).sum()
        return hits.item() / (len(xs) + len(xt))

    with fake_cuda():
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
            before_the_fix(_dann().to("cuda"), _images(4, size=28), _images(3, size=28))
