"""mmkd: cross-architecture knowledge distillation for OpenMMLab."""
from .compat import allow_mmengine_checkpoints

__version__ = '0.1.0'

allow_mmengine_checkpoints()

# Importing the sub-packages registers every mmkd type into the ``mmkd`` scope.
from . import apis, engine, evaluation, models  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
