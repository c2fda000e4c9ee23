from .cskd_head import CSKDClsHead
from .distill_token_head import DistillTokenClsHead

__all__ = ['DistillTokenClsHead', 'CSKDClsHead']
