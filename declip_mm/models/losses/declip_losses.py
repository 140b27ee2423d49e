"""DeCLIP distillation losses (method doc section 4; follow-up options from section 8).

* content: ``1 - mean_k cos(RoIAlign_1x1(F, box_k), CLS_teacher(crop_k))`` over the valid crops of the whole
  (all-rank) batch.
* context: ``mean_{b,i} || T_b[i,:] - S_b[i,:] ||_2`` with ``T`` the VFM token cosine-similarity matrix and ``S``
  the student context similarity (``csa``: mean of the Q and K similarities, ``all``: Q, K, V; each built from the
  head-concatenated features, the corrected form of the official code).
* options (off by default): a row-wise KL context loss and a region-correlation constraint.

All similarity matrices are built one image at a time so that at most one ``N x N`` matrix per image exists in the
forward pass; the loss math runs in fp32 whatever the autocast dtype.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from declip_mm.registry import MODELS

Tensor = torch.Tensor


def _fp32(fn):
    """Run a loss in fp32 even inside an autocast region (the N x N similarities must not be fp16)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        dev = next((a.device.type for a in args if isinstance(a, Tensor)), 'cpu')
        if isinstance(args[0], (tuple, list)) and args[0] and isinstance(args[0][0], Tensor):
            dev = args[0][0].device.type
        with torch.autocast(device_type=dev, enabled=False):
            return fn(*args, **kwargs)
    return wrapper


def roi_align_1x1(feat: Tensor, rois: Tensor) -> Tensor:
    """1x1 aligned RoIAlign, ``spatial_scale`` 1, ``sampling_ratio`` -1 (mmcv.ops).

    Args:
        feat: (B, D, H, W) feature map.
        rois: (K, 5) ``[batch_idx, x1, y1, x2, y2]`` in feature-grid units.
    Returns:
        (K, D) pooled features.
    """
    from declip_mm.models.utils import roi_pool
    return roi_pool(feat.float(), rois.float(), spatial_scale=1.0)


def boxes_to_rois(boxes: Tensor, grid_hw: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """Turn padded, normalised boxes into RoIs on a feature grid.

    Args:
        boxes: (B, K, 5) ``[x1, y1, x2, y2, valid]`` normalised to the padded (square) canvas.
        grid_hw: (H, W) of the feature grid.
    Returns:
        rois (V, 5) ``[b, x1, y1, x2, y2]`` in grid units for the V valid boxes, and the (B, K) bool validity mask.
    """
    valid = boxes[..., 4] > 0
    h, w = grid_hw
    bidx = torch.arange(boxes.shape[0], device=boxes.device)[:, None].expand(boxes.shape[:2])
    scale = boxes.new_tensor([w, h, w, h])
    xyxy = boxes[..., :4] * scale
    rois = torch.cat([bidx[valid][:, None].to(boxes.dtype), xyxy[valid]], dim=1)
    return rois, valid


@_fp32
def content_loss(student_roi: Tensor, teacher_cls: Tensor,
                 avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """``sum_k (1 - cos(student_roi_k, teacher_cls_k)) / avg_factor``; ``avg_factor`` defaults to K, i.e.
    ``1 - mean_k cos``. Under DDP the distiller passes the mean crop count per rank (global count / world size) so
    that the gradient averaged over ranks is the gradient of the mean over all crops of the global batch.

    Args:
        student_roi: (K, D) RoI features of the student content map.
        teacher_cls: (K, D) teacher [CLS] embeddings of the crops.
        avg_factor: normaliser (mmdet convention); ``None`` -> K.
    """
    if student_roi.shape != teacher_cls.shape:
        raise ValueError(f'content loss: student RoI features {tuple(student_roi.shape)} and teacher crop '
                         f'embeddings {tuple(teacher_cls.shape)} must have the same shape')
    fs = F.normalize(student_roi.float(), dim=-1)
    ft = F.normalize(teacher_cls.float(), dim=-1)
    total = (1.0 - (fs * ft).sum(-1)).sum()
    if avg_factor is None:
        avg_factor = student_roi.shape[0]
    if isinstance(avg_factor, Tensor):
        avg_factor = avg_factor.to(total)
    if float(avg_factor) <= 0:
        return total * 0.0
    return total / avg_factor


def _tokens(x: Tensor, grid_hw: Optional[Tuple[int, int]] = None) -> Tensor:
    """(B, C, H, W) map [optionally bilinearly resized to ``grid_hw``] -> (B, H*W, C) L2-normalised fp32 tokens."""
    x = x.float()
    if grid_hw is not None and tuple(x.shape[-2:]) != tuple(grid_hw):
        x = F.interpolate(x, size=tuple(grid_hw), mode='bilinear', align_corners=False)
    return F.normalize(x.flatten(2).transpose(1, 2), dim=-1)


def similarity(x: Tensor) -> Tensor:
    """Cosine-similarity (Gram) matrix of a (B, C, H, W) map over its H*W tokens -> (B, N, N)."""
    t = _tokens(x)
    return t @ t.transpose(1, 2)


def _as_tuple(context) -> Tuple[Tensor, ...]:
    if isinstance(context, Tensor):
        return (context, )
    return tuple(context)


def student_similarity(context: Union[Tensor, Sequence[Tensor]], grid_hw: Optional[Tuple[int, int]] = None) -> Tensor:
    """Student context similarity ``S``: the mean of the cosine-similarity matrices of each context part.

    ``(Q,)`` -> S_Q; ``(Q, K)`` (csa) -> (S_Q + S_K) / 2; ``(Q, K, V)`` (all) -> mean of three. Each part is a
    (B, C, h, w) map with the heads concatenated; it is bilinearly resized to ``grid_hw`` when that differs.
    Returns (B, N, N) with N = prod(grid_hw).
    """
    parts = _as_tuple(context)
    out = None
    for p in parts:
        t = _tokens(p, grid_hw)
        s = t @ t.transpose(1, 2)
        out = s if out is None else out + s
    return out / len(parts)


def _check_context(parts: Tuple[Tensor, ...], vfm: Tensor):
    if vfm.dim() != 4:
        raise ValueError(f'context loss: VFM features must be (B, C, h, w), got {tuple(vfm.shape)}')
    for p in parts:
        if p.dim() != 4 or p.shape[0] != vfm.shape[0]:
            raise ValueError(f'context loss: student context parts must be (B, C, H, W) with B = {vfm.shape[0]}, '
                             f'got {tuple(p.shape)}')


@_fp32
def context_loss(context: Union[Tensor, Sequence[Tensor]], vfm_feat: Tensor, loss_type: str = 'l2',
                 temperature: float = 0.1) -> Tensor:
    """Context distillation loss.

    Args:
        context: student context, one (B, C, H, W) map or a tuple of them (csa: (Q, K); all: (Q, K, V)).
        vfm_feat: (B, Cv, h, w) VFM tokens. The student similarity is computed on the VFM grid (bilinear resize of
            the student maps, align_corners False, when the grids differ).
        loss_type: ``'l2'`` = mean over images and rows of ``||T[i] - S[i]||_2`` (the paper / official form);
            ``'kl'`` = mean over rows of KL(softmax(T[i]/tau) || softmax(S[i]/tau)) (follow-up paper, unverified).
        temperature: tau of the KL form.
    Returns:
        scalar fp32 loss. One N x N matrix per image is live in the forward at a time.
    """
    parts = _as_tuple(context)
    _check_context(parts, vfm_feat)
    grid = tuple(vfm_feat.shape[-2:])
    total = vfm_feat.new_zeros((), dtype=torch.float32)
    for b in range(vfm_feat.shape[0]):
        t = _tokens(vfm_feat[b:b + 1], None)[0]  # (M, Cv)
        if loss_type == 'l2':
            d = t @ t.t()  # T_b, then T_b - S_b accumulated in place: a single N x N buffer per image
            for p in parts:
                s = _tokens(p[b:b + 1], grid)[0]
                d.addmm_(s, s.t(), beta=1.0, alpha=-1.0 / len(parts))
            total = total + d.norm(dim=1).mean()
        elif loss_type == 'kl':
            tgt = F.log_softmax((t @ t.t()) / temperature, dim=-1)
            s = None
            for p in parts:
                q = _tokens(p[b:b + 1], grid)[0]
                s = q @ q.t() if s is None else torch.addmm(s, q, q.t())
            pred = F.log_softmax(s / (len(parts) * temperature), dim=-1)
            total = total + F.kl_div(pred, tgt, log_target=True, reduction='none').sum(-1).mean()
        else:
            raise ValueError(f"context loss: loss_type must be 'l2' or 'kl', got {loss_type!r}")
    return total / vfm_feat.shape[0]


@_fp32
def legacy_csa_context_loss(context: Sequence[Tensor], vfm_feat: Tensor, num_heads: int) -> Tensor:
    """The official ``main`` branch csa/all form (per-head normalisation, (B*h, N, N) layout, no resize).

    Kept only for comparison: like the original, it only broadcasts when B == 1 and requires matching grids.
    """
    parts = _as_tuple(context)
    _check_context(parts, vfm_feat)
    if tuple(parts[0].shape[-2:]) != tuple(vfm_feat.shape[-2:]):
        raise ValueError('legacy csa context loss requires matching student and VFM grids')
    if vfm_feat.shape[0] != 1:
        raise ValueError('legacy csa context loss only works at batch size 1 (the official layout bug); '
                         "use the default context loss")
    t = _tokens(vfm_feat)
    tgt = t @ t.transpose(1, 2)  # (1, M, M)
    s = 0
    for p in parts:
        b, c, h, w = p.shape
        x = p.float().flatten(2).transpose(1, 2).reshape(b, h * w, num_heads, c // num_heads).transpose(1, 2)
        x = F.normalize(x.reshape(b * num_heads, h * w, -1), dim=-1)
        s = s + x @ x.transpose(1, 2)
    s = s / len(parts)
    return (tgt - s).norm(dim=-1).mean()


@_fp32
def region_correlation_loss(student_roi: Tensor, vfm_roi: Tensor, batch_idx: Tensor,
                            temperature: float = 0.1) -> Tensor:
    """Region-correlation constraint (follow-up paper; formula unverified, off by default).

    Per image, R = cosine similarity between its RoI features; loss = mean over images and rows of
    KL(softmax(R_VFM / tau) || softmax(R_CLIP / tau)).

    Args:
        student_roi: (K, D) student RoI features; vfm_roi: (K, Cv) VFM RoI features; batch_idx: (K,) image index.
    """
    losses = []
    for b in torch.unique(batch_idx):
        sel = batch_idx == b
        if int(sel.sum()) < 2:
            continue
        s = F.normalize(student_roi[sel].float(), dim=-1)
        v = F.normalize(vfm_roi[sel].float(), dim=-1)
        pred = F.log_softmax(s @ s.t() / temperature, -1)
        tgt = F.log_softmax(v @ v.t() / temperature, -1)
        losses.append(F.kl_div(pred, tgt, log_target=True, reduction='none').sum(-1).mean())
    if not losses:
        return student_roi.sum() * 0.0
    return torch.stack(losses).mean()


@MODELS.register_module()
class DeCLIPContentLoss(nn.Module):
    """Registered wrapper of :func:`content_loss` with a weight (``loss_weight`` x loss)."""

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student_roi: Tensor, teacher_cls: Tensor, avg_factor=None) -> Tensor:
        return self.loss_weight * content_loss(student_roi, teacher_cls, avg_factor)


@MODELS.register_module()
class DeCLIPContextLoss(nn.Module):
    """Registered wrapper of :func:`context_loss` (``loss_type`` 'l2' | 'kl' | 'legacy_csa')."""

    def __init__(self, loss_weight: float = 0.1, loss_type: str = 'l2', temperature: float = 0.1,
                 num_heads: Optional[int] = None):
        super().__init__()
        if loss_type not in ('l2', 'kl', 'legacy_csa'):
            raise ValueError(f"DeCLIPContextLoss: loss_type must be 'l2', 'kl' or 'legacy_csa', got {loss_type!r}")
        self.loss_weight = loss_weight
        self.loss_type = loss_type
        self.temperature = temperature
        self.num_heads = num_heads

    def forward(self, context, vfm_feat: Tensor) -> Tensor:
        if self.loss_type == 'legacy_csa':
            if self.num_heads is None:
                raise ValueError('legacy_csa context loss needs num_heads')
            loss = legacy_csa_context_loss(context, vfm_feat, self.num_heads)
        else:
            loss = context_loss(context, vfm_feat, self.loss_type, self.temperature)
        return self.loss_weight * loss


@MODELS.register_module()
class RegionCorrelationLoss(nn.Module):
    """Registered wrapper of :func:`region_correlation_loss`."""

    def __init__(self, loss_weight: float = 0.0, temperature: float = 0.1):
        super().__init__()
        self.loss_weight = loss_weight
        self.temperature = temperature

    def forward(self, student_roi, vfm_roi, batch_idx):
        return self.loss_weight * region_correlation_loss(student_roi, vfm_roi, batch_idx, self.temperature)
