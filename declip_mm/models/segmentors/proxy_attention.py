"""ProxyCLIP's proxy attention: a vision foundation model's patch-feature similarities as CLIP's last-block attention.

For a batch of crops normalised for CLIP (the data preprocessor's mean / std), :class:`VFMProxyAttention`

1. converts them to the VFM's normalisation (undoes the preprocessor's mean / std, applies the VFM's);
2. resizes them to ``input_size`` (SAM: 1024 x 1024, as ProxyCLIP does) or, by default, cuts them to a multiple of
   the VFM patch (what a stride-p patch embedding does with a remainder);
3. runs the frozen VFM (:class:`~declip_mm.models.vfm.VFMTeacher`; ``tap`` picks its features, ProxyCLIP uses
   the final-norm tokens of DINO / DINOv2 and SAM's neck output), giving F (B, C, I, J);
4. returns A (B, M, M), M = I*J, from :func:`proxy_attention`, and the grid (I, J).

``DeCLIPViT.extract_attended`` then applies A to the last block's values resized to (I, J); the segmentor
classifies at that grid.  The attention is computed in float32 whatever the autocast state (the threshold on the
similarities is sensitive to rounding).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from declip_mm.models.vfm import VFMTeacher  # noqa: F401 (registered: the default VFM type)
from declip_mm.registry import MODELS
from .catseg import _build

__all__ = ['proxy_attention', 'VFMProxyAttention']


def proxy_attention(feats: torch.Tensor, beta: float = 1.2, gamma: float = 3.0,
                    keep_diagonal: bool = True) -> torch.Tensor:
    """ProxyCLIP's attention from VFM features.

    Args:
        feats: (B, C, I, J) or (B, C, M) patch features of each crop.
        beta / gamma: S' = gamma * (S - beta * mean(S)), S the (M, M) cosine matrix of one crop and mean(S) the
            mean of all its M*M entries (ProxyCLIP takes the mean over its whole tensor, i.e. per crop at its
            batch size of one); entries with S' < 0 are excluded; A = softmax(S') over keys.
        keep_diagonal: never exclude a token's similarity to itself.  For non-zero features the diagonal is the
            largest entry of its row, so this only changes rows that would otherwise be fully excluded (NaN in the
            original, e.g. beta * mean(S) > 1 or a zero feature); such a row attends to itself.

    Returns A (B, M, M), float32, rows summing to 1.
    """
    with torch.autocast(feats.device.type, enabled=False):
        f = F.normalize(feats.flatten(2).float(), dim=1)  # (B, C, M)
        s = torch.bmm(f.transpose(1, 2), f)  # (B, M, M) cosine
        s = (s - beta * s.mean(dim=(1, 2), keepdim=True)) * gamma
        drop = s < 0
        if keep_diagonal:
            drop.diagonal(dim1=1, dim2=2).fill_(False)
        return s.masked_fill_(drop, float('-inf')).softmax(dim=-1)


@MODELS.register_module()
class VFMProxyAttention(BaseModule):
    """Proxy attention of a frozen VFM for CLIP's last block (ProxyCLIP, ECCV 2024).

    Args:
        vfm: ``VFMTeacher`` config (``name`` in ``dino_b8`` / ``dino_b16`` / ``dinov2_*`` / ``sam_b`` / ...,
            ``checkpoint`` a local file) or a built module.
        beta / gamma: see :func:`proxy_attention` (ProxyCLIP's defaults 1.2 / 3.0, used for every dataset).
        input_size: (h, w) the crops are bilinearly resized to before the VFM; ``'auto'`` (default): (1024, 1024)
            for SAM (as ProxyCLIP), else None (the crop at its own size, cut to a patch multiple).
        tap: which VFM features (``VFMTeacher.forward``'s ``tap``; ProxyCLIP: ``'tokens'``).
        keep_diagonal: see :func:`proxy_attention`.

    ``forward(crops, mean, std)``: crops (B, 3, H, W) normalised with (3,) ``mean`` / ``std`` (0-255 RGB; None:
    raw pixels) -> (A (B, M, M), (I, J)).
    """

    def __init__(self, vfm: Union[dict, torch.nn.Module], beta: float = 1.2, gamma: float = 3.0,
                 input_size: Union[str, None, Sequence[int]] = 'auto', tap: str = 'tokens',
                 keep_diagonal: bool = True, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        vfm = _build({'type': 'VFMTeacher', **vfm} if isinstance(vfm, dict) else vfm)  # type defaults to VFMTeacher
        self.vfm = vfm
        if input_size == 'auto':
            input_size = (1024, 1024) if getattr(vfm, 'is_sam', False) else None
        elif isinstance(input_size, str):
            raise ValueError(f"input_size must be 'auto', None or (h, w), got {input_size!r}")
        self.input_size = tuple(int(v) for v in input_size) if input_size is not None else None
        self.beta, self.gamma = float(beta), float(gamma)
        self.tap = tap
        self.keep_diagonal = keep_diagonal

    def init_weights(self):  # the VFM's weights come from its own checkpoint file
        self._is_init = True

    def vfm_input(self, crops: torch.Tensor, mean: Optional[torch.Tensor] = None,
                  std: Optional[torch.Tensor] = None) -> torch.Tensor:
        """CLIP-normalised crops -> the VFM's input (``VFMTeacher.prepare``: its own normalisation, then
        ``input_size`` or a patch-multiple cut)."""
        return self.vfm.prepare(crops, mean, std, self.input_size)

    def features(self, crops: torch.Tensor, mean=None, std=None) -> torch.Tensor:
        """(B, 3, H, W) CLIP-normalised crops -> (B, C, I, J) VFM features (no gradient)."""
        with torch.no_grad():
            return self.vfm(self.vfm_input(crops, mean, std), tap=self.tap)

    def forward(self, crops: torch.Tensor, mean=None, std=None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        feats = self.features(crops, mean, std)
        return proxy_attention(feats, self.beta, self.gamma, self.keep_diagonal), tuple(feats.shape[-2:])
