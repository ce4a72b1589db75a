"""Started by Python itself when this folder is on PYTHONPATH (``tools/run_notebooks.py --fake-cuda``): with
``COURSE_FAKE_CUDA=1``, the whole process runs under ``fakecuda.fake_cuda()``, so a notebook's kernel sees a
CUDA device and every device mix-up in its cells raises as it would on a GPU."""

import os
import sys

if os.environ.get("COURSE_FAKE_CUDA") == "1":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fakecuda

    FAKE = fakecuda.fake_cuda()  # kept: a collected context manager would restore everything
    FAKE.__enter__()  # for the life of the process
