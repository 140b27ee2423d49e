from .class_check_hook import OVClassCheckHook, check_head_classes
from .fvit import FViT

__all__ = ['FViT', 'OVClassCheckHook', 'check_head_classes']
