from .autocast_optim_wrapper import AutocastOptimWrapper
from .cross_arch_constructor import CrossArchOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'CrossArchOptimWrapperConstructor']
