from .fvit_rpn_head import NormRPNHead
from .ov_dquo_head import OVDQUOHead

__all__ = ['NormRPNHead', 'OVDQUOHead']
