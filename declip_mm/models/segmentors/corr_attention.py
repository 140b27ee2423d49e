"""CorrCLIP v1 (ICCV 2025): scope restriction by class-agnostic masks and value reconstruction from a VFM.

For a batch of crops (normalised for CLIP) and their region id maps (the smallest id of a crop = its unsegmented
pixels; padding carries ``MASK_PAD_VALUE``), :class:`CorrCLIPAttention`

1. runs the frozen VFM (:class:`~declip_mm.models.vfm.VFMTeacher`, CorrCLIP: DINO ViT-B/8) and takes **q + k** of
   its last block (heads concatenated, CLS dropped; ``tap='qk'``), L2-normalised: F (B, C, I, J);
2. nearest-resizes each crop's ids to (I, J) and **merges regions** (:func:`merge_regions`): the mean feature of
   every region but the smallest id, DBSCAN (eps 0.2, min_samples 1) on ``max(S_r) - S_r``; regions of one cluster
   get the id ``MASK_PAD_VALUE + cluster``;
3. builds the **restricted attention** (:func:`scope_attention`): S = F^T F; a pair of tokens is kept when both lie
   in one (merged) region, or when one of them is unsegmented and S > mean(S) of the crop; A = softmax(tau S) over
   the kept keys.

It returns A (B, M, M), the grid (I, J) and the merged ids (B, I, J).  The segmentor resizes the ids to the CLIP
token grid (:func:`region_masks`) and ``DeCLIPViT.extract_corr`` runs the rest of CorrCLIP's forward (mask class
tokens, spatial and semantic branches).  Everything is computed in float32 whatever the autocast state.

Reference: zdk258/CorrCLIP ``CorrCLIPv1/open_clip/transformer.py:528-578`` and ``corrclip_segmentor.py:96-112``.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from declip_mm.models.task_modules.mask_io import MASK_PAD_VALUE, MaskFileError, resize_mask_ids
from declip_mm.models.task_modules.mask_sources import build_mask_source
from declip_mm.models.task_modules.seg_postprocess import SkipCounter
from declip_mm.models.vfm import VFMTeacher  # noqa: F401 (registered: the default VFM type)
from declip_mm.registry import MODELS
from .catseg import _build

__all__ = ['dbscan_min1', 'merge_regions', 'scope_attention', 'region_masks', 'corrclip_num_spatial',
           'CorrCLIPAttention']


def corrclip_num_spatial(num_blocks: int) -> int:
    """Blocks averaged by the spatial branch (CorrCLIP: 5 for 12 blocks, 12 for 24, 28 for 32, else L - 4)."""
    return {12: 5, 24: 12, 32: 28}.get(num_blocks, num_blocks - 4)


def dbscan_min1(dist: torch.Tensor, eps: float) -> torch.Tensor:
    """DBSCAN with ``min_samples=1`` on a precomputed symmetric (n, n) distance matrix -> (n,) cluster labels.

    scikit-learn's rule: j is a neighbour of i when ``dist[i, j] <= eps`` (i itself included when its own distance
    is); with one sample every point with a neighbour is a core point, so the clusters are the connected
    components of that graph, numbered by their smallest member (the order scikit-learn's scan visits them); a
    point without any neighbour is noise (-1).
    """
    n = dist.shape[0]
    adj = dist <= eps
    core = adj.any(dim=1)
    reach = adj | torch.diag(core)
    while True:  # transitive closure by squaring
        nxt = (reach.float() @ reach.float()) > 0
        if torch.equal(nxt, reach):
            break
        reach = nxt
    root = reach.float().argmax(dim=1)  # first True = smallest member of the component
    labels = torch.full((n,), -1, dtype=torch.long, device=dist.device)
    if core.any():
        _, labels[core] = torch.unique(root[core], sorted=True, return_inverse=True)
    return labels


def merge_regions(feats: torch.Tensor, ids: torch.Tensor, eps: float = 0.2, min_samples: int = 1,
                  offset: int = MASK_PAD_VALUE) -> torch.Tensor:
    """CorrCLIP's mask merging for one crop (transformer.py:545-562).

    Args:
        feats: (C, I, J) L2-normalised VFM features.
        ids: (I, J) int region ids at the VFM grid (smallest = unsegmented).
        eps / min_samples: DBSCAN's (CorrCLIP: 0.2 / 1; only 1 is implemented).
        offset: merged regions get ``offset + cluster`` (CorrCLIP: 10000, the same value as the window padding).

    Returns the (I, J) merged ids (unchanged when there are at most 2 ids).
    """
    if min_samples != 1:
        raise NotImplementedError(f'merge_regions implements DBSCAN with min_samples=1 (CorrCLIP), got {min_samples}')
    values = torch.unique(ids)
    if values.numel() <= 2:
        return ids
    f = feats.flatten(1).float()  # (C, M)
    flat = ids.reshape(-1)
    onehot = (flat[None] == values[:, None]).float()  # (R, M)
    mean = (onehot @ f.T) / onehot.sum(dim=1, keepdim=True)
    inst = F.normalize(mean, dim=1)[1:]  # drop the unsegmented (smallest) id
    sim = inst @ inst.T
    cluster = dbscan_min1(sim.max() - sim, eps)
    merged = torch.where(cluster >= 0, cluster + offset, values[1:].long())  # noise keeps its id
    new_of = torch.cat([values[:1], merged.to(ids.dtype)])  # per sorted id
    return new_of[torch.searchsorted(values, flat)].view_as(ids)


def scope_attention(feats: torch.Tensor, ids: torch.Tensor, tau: float = 4.0,
                    keep_diagonal: bool = True) -> torch.Tensor:
    """CorrCLIP's restricted attention (transformer.py:542, :565-578).

    Args:
        feats: (B, C, I, J) or (B, C, M) VFM features (L2-normalised here over C).
        ids: (B, I, J) or (B, M) merged region ids; per crop the smallest id is the unsegmented union.
        tau: temperature (CorrCLIP: 4).
        keep_diagonal: never drop a token's similarity to itself (only changes rows the original leaves all -inf,
            i.e. NaN; e.g. an unsegmented token whose similarities are all <= the mean).

    Returns A (B, M, M), float32: softmax over keys of ``tau * S`` where S is the cosine matrix, kept for pairs in
    one region other than the smallest, and for pairs with an unsegmented token when S > mean(S) (per crop).
    """
    with torch.autocast(feats.device.type, enabled=False):
        f = F.normalize(feats.flatten(2).float(), dim=1)
        s = torch.bmm(f.transpose(1, 2), f)  # (B, M, M)
        g = ids.reshape(ids.shape[0], -1)
        unseg = g == g.min(dim=1, keepdim=True)[0]
        keep = (g[:, :, None] == g[:, None, :]) & ~unseg[:, :, None]
        keep |= (unseg[:, :, None] | unseg[:, None, :]) & (s > s.mean(dim=(1, 2), keepdim=True))
        if keep_diagonal:
            keep.diagonal(dim1=1, dim2=2).fill_(True)
        return (s * tau).masked_fill_(~keep, float('-inf')).softmax(dim=-1)


def region_masks(ids: torch.Tensor) -> torch.Tensor:
    """(B, h, w) ids at the CLIP token grid -> (B, R, h, w) bool, one mask per id present (ascending), rows past an
    image's own count all False (R = the largest count in the batch).  One mask class token per row."""
    per = [torch.unique(g) for g in ids]
    R = max(len(u) for u in per)
    out = ids.new_zeros((ids.shape[0], R) + tuple(ids.shape[1:]), dtype=torch.bool)
    for b, u in enumerate(per):
        out[b, :len(u)] = ids[b][None] == u[:, None, None]
    return out


@MODELS.register_module()
class CorrCLIPAttention(BaseModule, SkipCounter):
    """CorrCLIP v1's restricted attention and region handling for CLIP's last block.

    Args:
        vfm: ``VFMTeacher`` config (CorrCLIP: ``dino_b8``) or a built module.
        mask_source: TASK_UTILS config / object mapping an image path to its (H, W) id map at the original size
            (``MaskFileSource`` for CorrCLIP's published masks, ``SAM2MaskSource`` / ``SAMMaskSource``).
        tau: temperature of the restricted attention (4).
        eps / min_samples: DBSCAN of the region merging (0.2 / 1).
        alpha / beta: weights of the spatial and semantic branches (1.0 / 0.5).
        num_spatial: blocks averaged by the spatial branch; ``'auto'``: :func:`corrclip_num_spatial`.
        tap: VFM features (CorrCLIP: ``'qk'``, q + k of the last block).
        on_missing: ``'error'``: a missing / unreadable / wrongly sized mask raises an error naming the file;
            ``'skip'``: the image runs without regions (all tokens unsegmented) and is counted in the report
            (``SegPostProcessReportHook``).
        keep_diagonal: see :func:`scope_attention`.

    ``forward(crops, mean, std, ids)``: crops (B, 3, H, W) normalised with (3,) ``mean`` / ``std``, ids (B, H, W)
    -> (A (B, M, M), (I, J), merged ids (B, I, J)).
    """

    uses_regions = True

    def __init__(self, vfm: Union[dict, torch.nn.Module], mask_source: Union[dict, object, None] = None,
                 tau: float = 4.0, eps: float = 0.2, min_samples: int = 1, alpha: float = 1.0, beta: float = 0.5,
                 num_spatial: Union[str, int] = 'auto', tap: str = 'qk', on_missing: str = 'error',
                 keep_diagonal: bool = True, init_cfg: Optional[dict] = None):
        BaseModule.__init__(self, init_cfg=init_cfg)
        SkipCounter.__init__(self)
        vfm = _build({'type': 'VFMTeacher', **vfm} if isinstance(vfm, dict) else vfm)  # type defaults to VFMTeacher
        if on_missing not in ('error', 'skip'):
            raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        if min_samples != 1:
            raise NotImplementedError('CorrCLIPAttention: only DBSCAN min_samples=1 (CorrCLIP) is implemented')
        if num_spatial != 'auto' and (not isinstance(num_spatial, int) or num_spatial < 1):
            raise ValueError(f"num_spatial must be 'auto' or a positive int, got {num_spatial!r}")
        self.vfm = vfm
        self.mask_source = build_mask_source(mask_source)
        self.tau, self.eps, self.min_samples = float(tau), float(eps), int(min_samples)
        self.alpha, self.beta = float(alpha), float(beta)
        self.num_spatial = num_spatial
        self.tap = tap
        self.on_missing = on_missing
        self.keep_diagonal = keep_diagonal

    def init_weights(self):  # the VFM's weights come from its own checkpoint file
        self._is_init = True

    def spatial_blocks(self, num_blocks: int) -> Tuple[int, ...]:
        """0-based indices of the block outputs the spatial branch averages (ViT-B: 5..9)."""
        n = corrclip_num_spatial(num_blocks) if self.num_spatial == 'auto' else int(self.num_spatial)
        if n > num_blocks - 2:
            raise ValueError(f'num_spatial={n} needs more than {num_blocks} blocks')
        return tuple(range(num_blocks - 2 - n, num_blocks - 2))

    # ------------------------------------------------------------------------------------------------ regions
    def image_ids(self, data_sample, shape: Sequence[int]) -> torch.Tensor:
        """(H, W) int32 id map of one image at its original size ``shape`` (from ``mask_source`` and the data
        sample's ``img_path``).  Errors name the file; with ``on_missing='skip'`` a problem gives one region
        (all zeros) and is counted."""
        img_path = data_sample.metainfo.get('img_path') if data_sample is not None else None
        try:
            if self.mask_source is None:
                raise MaskFileError('CorrCLIPAttention has no mask_source')
            if not img_path:
                raise MaskFileError('CorrCLIP needs the image file path (data_sample.img_path) to find its masks')
            ids = torch.as_tensor(self.mask_source(img_path))
            if tuple(ids.shape) != tuple(shape):
                where = getattr(self.mask_source, 'path_for', lambda p: None)(img_path) or img_path
                raise MaskFileError(f'masks {where!r} are {ids.shape[0]}x{ids.shape[1]} but the image {img_path!r} is '
                                    f'{shape[0]}x{shape[1]} (masks must have the original image size)', where)
        except MaskFileError as e:
            if self.on_missing == 'error':
                raise
            self.record_skip(img_path or 'an image without img_path', str(e))
            ids = torch.zeros(tuple(shape), dtype=torch.int32)
        self.num_seen += 1
        return ids.int()

    # ------------------------------------------------------------------------------------------------ forward
    def vfm_input(self, crops: torch.Tensor, mean: Optional[torch.Tensor] = None,
                  std: Optional[torch.Tensor] = None) -> torch.Tensor:
        """CLIP-normalised crops -> the VFM's normalisation, cut to a VFM-patch multiple (``VFMTeacher.prepare``)."""
        return self.vfm.prepare(crops, mean, std)

    def features(self, crops: torch.Tensor, mean=None, std=None) -> torch.Tensor:
        """(B, 3, H, W) CLIP-normalised crops -> (B, C, I, J) L2-normalised VFM features (no gradient)."""
        with torch.no_grad():
            return F.normalize(self.vfm(self.vfm_input(crops, mean, std), tap=self.tap).float(), dim=1)

    def forward(self, crops: torch.Tensor, mean=None, std=None,
                ids: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Tuple[int, int], torch.Tensor]:
        feats = self.features(crops, mean, std)
        grid = tuple(feats.shape[-2:])
        if ids is None:
            ids = torch.zeros((crops.shape[0],) + tuple(crops.shape[-2:]), dtype=torch.int32, device=crops.device)
        g = resize_mask_ids(ids, grid)
        merged = torch.stack([merge_regions(f, i, self.eps, self.min_samples) for f, i in zip(feats, g)])
        return scope_attention(feats, merged, self.tau, self.keep_diagonal), grid, merged

    def extra_repr(self) -> str:
        return (f'tau={self.tau}, eps={self.eps}, alpha={self.alpha}, beta={self.beta}, '
                f'num_spatial={self.num_spatial!r}, tap={self.tap!r}, mask_source={self.mask_source!r}, '
                f'on_missing={self.on_missing!r}')
