"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as NACLIP applies it to the final logits.

The image gives each pixel an affinity to its 8 neighbours at every dilation d (offsets (i, j) * d, i, j in
{-1, 0, 1}, (0, 0) excluded; borders replicate-padded):

    k = -|I_c(x) - I_c(x + o)| / (1e-8 + 0.1 * std_c(x)),     std over the 3x3 taps of every dilation (unbiased),
    w = softmax over the 8 * len(dilations) offsets o of mean over channels c of k,

and the logits are propagated ``num_iter`` times: ``L(x) <- sum_o w_o(x) L(x + o)`` (the centre pixel is not a
term).  Defaults are NACLIP's (10 steps, dilations (8, 16), ``naclip.py:21``).  The image is the segmentor's
normalised input, bilinearly resized to the logits' (original) size; the logits are the raw cosines (before
``logit_scale``), as in NACLIP ``naclip.py:129-132``.

The computation runs in fp32 whatever the input dtype (bf16 / fp16 logits are cast back), one image at a time,
and without materialising the (Q, P, H, W) neighbour tensor of the original (memory O(Q H W)).
"""
from typing import Sequence

import torch
import torch.nn.functional as F

from declip_mm.registry import MODELS, SEG_MODELS, register_everywhere
from .seg_postprocess import SegPostProcessor

__all__ = ['PAMR', 'pamr', 'pamr_affinity']


def _offsets(d: int):
    return [(i * d, j * d) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)]


def _shift(xp: torch.Tensor, pad: int, dy: int, dx: int, H: int, W: int) -> torch.Tensor:
    """x(y + dy, x + dx) from a tensor replicate-padded by ``pad``."""
    return xp[..., pad + dy:pad + dy + H, pad + dx:pad + dx + W]


def pamr_affinity(image: torch.Tensor, dilations: Sequence[int] = (8, 16)) -> torch.Tensor:
    """(B, C, H, W) image -> (B, P, H, W) neighbour weights (softmax over P = 8 * len(dilations))."""
    B, C, H, W = image.shape
    x = image.float()
    diffs, taps = [], []
    for d in dilations:
        xp = F.pad(x, [d] * 4, mode='replicate')
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                taps.append(_shift(xp, d, i * d, j * d, H, W))
        diffs += [(x - _shift(xp, d, dy, dx, H, W)).abs() for dy, dx in _offsets(d)]
    std = torch.stack(taps, dim=2).std(dim=2)  # (B, C, H, W), unbiased, centre counted once per dilation
    k = -torch.stack(diffs, dim=2) / (1e-8 + 0.1 * std[:, :, None])  # (B, C, P, H, W)
    return k.mean(dim=1).softmax(dim=1)


def pamr(image: torch.Tensor, logits: torch.Tensor, num_iter: int = 10,
         dilations: Sequence[int] = (8, 16)) -> torch.Tensor:
    """(B, 3, H, W) image and (B, Q, H, W) logits of the same size -> refined (B, Q, H, W) (in logits' dtype)."""
    if image.shape[-2:] != logits.shape[-2:]:
        raise ValueError(f'PAMR: image {tuple(image.shape[-2:])} and logits {tuple(logits.shape[-2:])} differ in size')
    with torch.autocast(device_type=logits.device.type, enabled=False):
        w = pamr_affinity(image, dilations)  # (B, P, H, W)
        m = logits.float()
        H, W = m.shape[-2:]
        for _ in range(num_iter):
            out = torch.zeros_like(m)
            p = 0
            for d in dilations:
                mp = F.pad(m, [d] * 4, mode='replicate')
                for dy, dx in _offsets(d):
                    out += w[:, p:p + 1] * _shift(mp, d, dy, dx, H, W)
                    p += 1
            m = out
    return m.to(logits.dtype)


@register_everywhere(MODELS, SEG_MODELS)
class PAMR(SegPostProcessor):
    """PAMR as a ``postprocess`` step of a training-free segmentor (refines the logits before the argmax).

    Args:
        num_iter: propagation steps (NACLIP: 10).
        dilations: neighbourhood dilations (NACLIP: (8, 16)).
        skip_on_oom: an out-of-memory error leaves that image unrefined (counted, logged) instead of failing,
            as NACLIP does.
    """

    def __init__(self, num_iter: int = 10, dilations: Sequence[int] = (8, 16), skip_on_oom: bool = True):
        super().__init__()
        self.num_iter = int(num_iter)
        self.dilations = tuple(int(d) for d in dilations)
        self.skip_on_oom = skip_on_oom

    def refine_logits(self, logits: torch.Tensor, image: torch.Tensor, data_sample=None) -> torch.Tensor:
        """(Q, H, W) logits at the original size, (3, h, w) normalised input image -> (Q, H, W)."""
        if self.num_iter <= 0:
            return logits
        img = F.interpolate(image[None].float(), size=logits.shape[-2:], mode='bilinear', align_corners=False)
        try:
            return pamr(img, logits[None], self.num_iter, self.dilations)[0]
        except torch.OutOfMemoryError as e:
            if not self.skip_on_oom:
                raise
            what = (data_sample.metainfo.get('img_path') if data_sample is not None else None) or 'an image'
            self.record_skip(what, f'out of memory at {tuple(logits.shape)}: {str(e).splitlines()[0]}')
            return logits

    def extra_repr(self) -> str:
        return f'num_iter={self.num_iter}, dilations={self.dilations}'
