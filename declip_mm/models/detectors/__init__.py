from .class_check_hook import OVClassCheckHook, check_head_classes
from .fvit import FViT
from .ov_dquo import OVDQUO

__all__ = ['FViT', 'OVDQUO', 'OVClassCheckHook', 'check_head_classes']
