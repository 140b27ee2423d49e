"""Inference with a free vocabulary: ``OVDetInferencer`` (F-ViT), ``OVSegInferencer`` (CAT-Seg, training-free)."""
from .det_inferencer import OVDetInferencer
from .seg_inferencer import OVSegInferencer
from .vocabulary import Vocabulary, parse_vocabulary

__all__ = ['OVDetInferencer', 'OVSegInferencer', 'Vocabulary', 'parse_vocabulary']
