"""Unsupervised domain adaptation, split as in TLlib: discrepancy measures, adversarial training, the loop.

* ``mmd``:   ``mmd2`` (biased/unbiased, linear/RBF/multi-kernel), ``median_bandwidth``, ``mmd_test``.
* ``dann``:  gradient reversal, the λ(p) and μ_p schedules, the size-adaptive DANN model, domain labels.
* ``adapt``: ``train_adapted`` (source-only, DANN and MMD through one loop), ``proxy_a_distance``.
* ``digits``: MNIST -> MNIST-M / USPS as (N, 3, 28, 28) tensors, and ``run`` (one method, one seed).
"""

from . import digits
from .adapt import METHODS, adapted_loss, forever, proxy_a_distance, train_adapted
from .dann import DANN, GradReverse, dann_lambda, dann_lr, domain_labels, grad_reverse
from .mmd import MMDTest, kernel_matrix, median_bandwidth, mmd2, mmd_test

__all__ = ["digits", "DANN", "GradReverse", "dann_lambda", "dann_lr", "domain_labels", "grad_reverse", "MMDTest",
           "kernel_matrix", "median_bandwidth", "mmd2", "mmd_test", "METHODS", "adapted_loss",
           "forever", "proxy_a_distance", "train_adapted"]
