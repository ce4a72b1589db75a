"""course_lib: the tested code behind the transfer-learning course's notebooks."""

from .config import Config, setup

__version__ = "0.1.0"
__all__ = ["Config", "setup", "__version__"]
