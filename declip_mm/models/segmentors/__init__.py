"""Segmentors (mmseg): CAT-Seg and the training-free DeCLIP segmentor (optionally with ProxyCLIP's VFM proxy
attention or CorrCLIP's region-restricted attention)."""
from .catseg import CATSeg, catseg_slide_merge, catseg_window_offsets
from .corr_attention import CorrCLIPAttention, merge_regions, scope_attention
from .data_preprocessor import OVSegDataPreProcessor
from .proxy_attention import VFMProxyAttention, proxy_attention
from .zeroshot_seg import DeCLIPZeroShotSegmentor

__all__ = ['CATSeg', 'CorrCLIPAttention', 'merge_regions', 'scope_attention', 'DeCLIPZeroShotSegmentor',
           'OVSegDataPreProcessor', 'VFMProxyAttention', 'catseg_slide_merge',
           'catseg_window_offsets', 'proxy_attention']
