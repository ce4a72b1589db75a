"""course_lib: the tested code behind the transfer-learning course's notebooks.

Device rule, for every public function that takes a model: it computes on the model's device
(``config.device_of(model)``) and accepts its tensor inputs on any device, moving them there itself; an
explicit ``device=`` argument, where there is one, overrides the model's.  Its docstring says where the
result lives: tensors a notebook keeps (features, logits, probabilities, labels) come back on the CPU,
scalars as Python floats, trained models stay where they were.  Functions without a model (losses,
scores) compute on the device of their inputs.  ``tests/test_devices.py`` checks the rule on a machine
without a GPU (``tests/fakecuda.py`` lets CPU tensors pose as CUDA tensors).
"""

from .bench_record import record
from .config import Config, setup

__version__ = "0.1.0"
__all__ = ["Config", "record", "setup", "__version__"]
