"""Segmentors (mmseg): CAT-Seg and the training-free DeCLIP segmentor."""
from .catseg import CATSeg, catseg_slide_merge, catseg_window_offsets
from .data_preprocessor import OVSegDataPreProcessor
from .zeroshot_seg import DeCLIPZeroShotSegmentor

__all__ = ['CATSeg', 'DeCLIPZeroShotSegmentor', 'OVSegDataPreProcessor', 'catseg_slide_merge',
           'catseg_window_offsets']
