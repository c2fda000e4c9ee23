from .distillers import *  # noqa: F401,F403
from .ema import DistillerEMA, copy_without_teacher  # noqa: F401
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .multi_view import MultiViewGenerator  # noqa: F401
from .nan_guard import NonFiniteLossError, NonFiniteLossGuard  # noqa: F401
from .seeded_data_preprocessor import SeededClsDataPreprocessor  # noqa: F401
from .taps import FeatureTaps  # noqa: F401
from .teacher_source import CachedTeacherLogits, OnlineTeacher, TeacherSource  # noqa: F401
from .wrappers import *  # noqa: F401,F403
