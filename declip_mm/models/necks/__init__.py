# F-ViT's simple pyramid is mmseg's Feature2Pyramid(rescales=[4, 2, 1, 0.5]) (tests/converters/test_neck.py).
from .sequential_neck import SequentialNeck
from .vit_pyramid import ViTPyramidNeck

__all__ = ['SequentialNeck', 'ViTPyramidNeck']
