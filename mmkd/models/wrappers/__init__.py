from .cross_arch_ddp import CrossArchDDP

__all__ = ['CrossArchDDP']
