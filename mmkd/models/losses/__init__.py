from .base import DistillLoss
from .cakd import CAKDLoss
from .cskd import CSKDLoss
from .deit import DeiTLoss
from .dkd import DKDLoss
from .fitnet import FitNetLoss
from .kd import KDLoss
from .nkd import NKDLoss
from .tat import TaTLoss, TaTSegLoss
from .vitkd import ViTKDLoss

__all__ = ['DistillLoss', 'KDLoss', 'DeiTLoss', 'NKDLoss', 'DKDLoss', 'FitNetLoss', 'ViTKDLoss',
           'CSKDLoss', 'CAKDLoss', 'TaTLoss', 'TaTSegLoss']
