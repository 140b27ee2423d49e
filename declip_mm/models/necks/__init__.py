from .simple_pyramid import FViTSimplePyramid, SequentialNeck

__all__ = ['FViTSimplePyramid', 'SequentialNeck']
