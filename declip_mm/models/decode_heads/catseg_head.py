"""CAT-Seg (CVPR 2024) cost-aggregation head: cost volume -> spatial/class aggregation -> upsampling decoder.

Faithful to ``cvlab-kaist/CAT-Seg`` (``cat_seg/modeling/transformer/model.py``, head 6d3a188); every quirk of that
code is reproduced (inline notes; summary in ``docs/method.md`` section 10).  Sub-module names mirror the official ones
(``layers.i.swin_block.block_1.attn.q``, ``layers.i.attention.attention.q``, ``conv1``, ``decoder1.up`` ...), so an
official ``sem_seg_head.predictor.transformer.*`` state dict maps onto this head by stripping that prefix
(``upsample1/2`` live in the official ``CATSeg`` model and map one-to-one).

Shapes (B/16 at 384, L/14 at 336 in brackets): dense (B,512[768],24,24); block taps (B,768[1024],24,24);
text (T,P,512[768]); logits (B,T,96,96).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from declip_mm.registry import MODELS, SEG_MODELS, register_everywhere

__all__ = ['CATSegHead', 'catseg_cost_volume', 'catseg_select_classes', 'catseg_bce_loss']


# ----------------------------------------------------------------------------------------------------------------
# pure functions (unit-tested against hand computations)
# ----------------------------------------------------------------------------------------------------------------
def catseg_cost_volume(img_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
    """Cosine cost volume, no temperature.

    Args:
        img_feats: (B, D, H, W) dense embeddings (any norm).
        text_feats: (B, T, P, D) text embeddings (any norm).
    Returns:
        (B, P, T, H, W) cosine similarities.
    """
    img = F.normalize(img_feats, dim=1)
    txt = F.normalize(text_feats, dim=-1)
    return torch.einsum('bchw,btpc->bpthw', img, txt)


def catseg_select_classes(corr: torch.Tensor, k: int) -> torch.Tensor:
    """Per-image top-``k`` classes by their maximum cosine over prompts and pixels.

    Args:
        corr: (B, P, T, H, W) cost volume.
    Returns:
        (B, k) long class indices (sorted by score, descending).
    """
    score = corr.permute(0, 2, 1, 3, 4).flatten(2).max(dim=-1)[0]  # (B, T)
    return score.topk(k, dim=-1, sorted=True)[1]


def catseg_bce_loss(logits: torch.Tensor, gt: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """CAT-Seg's loss: per-class sigmoid BCE; ignored pixels get all-zero targets and **stay** in the mean.

    Args:
        logits: (B, T, h, w) logits; bilinearly upsampled (align_corners=False) to the GT size.
        gt: (B, H, W) integer labels in [0, T) or ``ignore_index``.
    Returns:
        scalar mean over B*H*W*T.
    """
    if gt.dim() == 4:
        gt = gt.squeeze(1)
    B, T = logits.shape[:2]
    if logits.shape[-2:] != gt.shape[-2:]:
        logits = F.interpolate(logits, size=gt.shape[-2:], mode='bilinear', align_corners=False)
    gt = gt.long()
    valid = gt != ignore_index
    if valid.any():
        bad = gt[valid]
        if bad.min() < 0 or bad.max() >= T:
            raise ValueError(f'ground-truth label {int(bad.max())} (or {int(bad.min())}) is outside [0, {T}) for '
                             f'{T} class names and is not ignore_index={ignore_index}: the class-name list does not '
                             'match the dataset')
    target = torch.zeros_like(logits)
    onehot = F.one_hot(torch.where(valid, gt, torch.zeros_like(gt)), num_classes=T).permute(0, 3, 1, 2)
    target = onehot.to(logits.dtype) * valid.unsqueeze(1).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target)


# ----------------------------------------------------------------------------------------------------------------
# spatial aggregation (Swin blocks with appearance guidance on Q/K)
# ----------------------------------------------------------------------------------------------------------------
def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C)


def _window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    C = windows.shape[-1]
    B = windows.shape[0] // ((H // ws) * (W // ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, C)


class _Mlp(nn.Module):
    """timm-style MLP (fc1 -> GELU -> fc2), names match timm's ``Mlp``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class GuidedWindowAttention(nn.Module):
    """Window MHSA; Q/K from [x || guidance], V from x; scale head_dim^-0.5; no relative-position bias.

    Runs on fused SDPA: the (windows x heads x N x N) attention matrix is never materialised. The shifted block's
    additive 0/-100 mask is laid out (1, nW*h, N, N) with the windows folded into the head axis, so it broadcasts
    over the images and classes (the same math as ``softmax(q k^T * scale + mask) v``).
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def sdpa_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(nW, N, N) additive mask -> (1, nW*h, N, N), the layout ``forward`` expects."""
        nw, n = mask.shape[0], mask.shape[-1]
        return mask[:, None].expand(nw, self.num_heads, n, n).reshape(1, nw * self.num_heads, n, n)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (nW*B, N, dim+guidance_dim); mask: (nW, N, N) of 0/-100, or already (1, nW*h, N, N)."""
        Bn, N, _ = x.shape
        h = self.num_heads
        q = self.q(x).reshape(Bn, N, h, -1).transpose(1, 2)
        k = self.k(x).reshape(Bn, N, h, -1).transpose(1, 2)
        v = self.v(x[..., :self.dim]).reshape(Bn, N, h, -1).transpose(1, 2)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            if mask.dim() == 3:
                mask = self.sdpa_mask(mask)
            nwh = mask.shape[1]
            fold = (Bn * h // nwh, nwh, N, -1)  # (B, nW*h, N, d): windows are batch-minor in x
            out = F.scaled_dot_product_attention(q.reshape(fold), k.reshape(fold), v.reshape(fold),
                                                 attn_mask=mask.to(q.dtype), scale=self.scale)
        out = out.reshape(Bn, h, N, -1).transpose(1, 2).reshape(Bn, N, -1)
        return self.proj(out)


class GuidedSwinBlock(nn.Module):
    """Swin block whose Q/K see the (normalised) appearance guidance; ``attn_mask`` as in Swin (-100)."""

    def __init__(self, dim: int, guidance_dim: int, input_resolution: Tuple[int, int], num_heads: int,
                 window_size: int, shift_size: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        if min(self.input_resolution) <= self.window_size:  # official: no partition, no shift
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        H, W = self.input_resolution
        if H % self.window_size or W % self.window_size:
            raise ValueError(f'feature resolution {self.input_resolution} is not a multiple of the Swin window '
                             f'{self.window_size}')
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))
        if self.shift_size > 0:
            img_mask = torch.zeros(1, H, W, 1)
            ws, ss = self.window_size, self.shift_size
            cnt = 0
            for hs in (slice(0, -ws), slice(-ws, -ss), slice(-ss, None)):
                for wsl in (slice(0, -ws), slice(-ws, -ss), slice(-ss, None)):
                    img_mask[:, hs, wsl, :] = cnt
                    cnt += 1
            mw = _window_partition(img_mask, ws).squeeze(-1)  # (nW, ws*ws)
            attn_mask = mw.unsqueeze(1) - mw.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)
        else:
            attn_mask = None
        self.register_buffer('attn_mask', attn_mask)  # (nW, N, N), as the official (state-dict compatible)
        # the same mask in the fused-attention layout, built once (not part of the state dict)
        self.register_buffer('sdpa_mask', None if attn_mask is None else self.attn.sdpa_mask(attn_mask),
                             persistent=False)

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
        """x: (N, H*W, dim); guidance: (N, H*W, g) or None."""
        H, W = self.input_resolution
        N, L, C = x.shape
        if L != H * W:
            raise ValueError(f'spatial aggregation built for {H}x{W} features got {L} tokens; set the head\'s '
                             'feature_resolution to the CLIP grid (input size / patch size)')
        shortcut = x
        x = self.norm1(x).view(N, H, W, C)
        if guidance is not None:
            x = torch.cat([x, guidance.view(N, H, W, -1)], dim=-1)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        win = _window_partition(x, self.window_size)
        win = self.attn(win, mask=self.sdpa_mask)
        x = _window_reverse(win, self.window_size, H, W)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = shortcut + x.reshape(N, H * W, C)
        return x + self.mlp(self.norm2(x))


class SpatialAggregation(nn.Module):
    """Two Swin blocks (shift 0, then window//2) over every (image, class) cost slice."""

    def __init__(self, dim: int, guidance_dim: int, input_resolution, num_heads: int, window_size: int):
        super().__init__()
        self.block_1 = GuidedSwinBlock(dim, guidance_dim, input_resolution, num_heads, window_size, 0)
        self.block_2 = GuidedSwinBlock(dim, guidance_dim, input_resolution, num_heads, window_size, window_size // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim > 0 else None

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
        """x: (B, C, T, H, W); guidance: (B, G, H, W). Guidance is tiled **batch-major** to match (B*T)."""
        B, C, T, H, W = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C)
        if guidance is not None:
            g = guidance.flatten(2).transpose(1, 2)  # (B, HW, G)
            g = g.unsqueeze(1).expand(B, T, H * W, g.shape[-1]).reshape(B * T, H * W, -1)
            guidance = self.guidance_norm(g)
        x = self.block_1(x, guidance)
        x = self.block_2(x, guidance)
        return x.view(B, T, H, W, C).permute(0, 4, 1, 2, 3)


# ----------------------------------------------------------------------------------------------------------------
# class aggregation (linear attention over classes, padding to pad_len)
# ----------------------------------------------------------------------------------------------------------------
class LinearAttention(nn.Module):
    """Linear attention ("Transformers are RNNs"): elu+1 feature map, eps 1e-6, values scaled by 1/S."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, q, k, v):
        """q: (N, L, h, d); k, v: (N, S, h, d) -> (N, L, h, d)."""
        Q = F.elu(q) + 1
        K = F.elu(k) + 1
        S = v.size(1)
        v = v / S
        KV = torch.einsum('nshd,nshv->nhdv', K, v)
        Z = 1 / (torch.einsum('nlhd,nhd->nlh', Q, K.sum(dim=1)) + self.eps)
        return torch.einsum('nlhd,nhdv,nlh->nlhv', Q, KV, Z) * S


class GuidedAttentionLayer(nn.Module):
    """Q/K from [x || guidance], V from x, linear attention, no output projection."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.attention = LinearAttention()

    def forward(self, x, guidance):
        xg = torch.cat([x, guidance], dim=-1) if guidance is not None else x
        N, L, C = x.shape
        h = self.num_heads
        q = self.q(xg).view(N, L, h, -1)
        k = self.k(xg).view(N, L, h, -1)
        v = self.v(x).view(N, L, h, -1)
        return self.attention(q, k, v).reshape(N, L, C)


class ClassAggregation(nn.Module):
    """Class aggregation with CAT-Seg's exact residual form.

    ``x_pool = pool(x); x_pool += LinAttn(LN(x_pool)); x_pool += MLP(LN(x_pool)); x = x + up(x_pool)`` — with 1x1
    pooling (test) ``x`` is therefore doubled plus the update, as in the official code.
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, pad_len: int):
        super().__init__()
        self.attention = GuidedAttentionLayer(dim, guidance_dim, num_heads)
        self.MLP = nn.Sequential(nn.Linear(dim, dim * 4), nn.ReLU(), nn.Linear(dim * 4, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.pad_len = pad_len
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, dim)) if pad_len > 0 else None
        self.padding_guidance = (nn.Parameter(torch.zeros(1, 1, guidance_dim))
                                 if pad_len > 0 and guidance_dim > 0 else None)

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor], pool_size: Tuple[int, int]) -> torch.Tensor:
        """x: (B, C, T, H, W); guidance: (B, T, G); pool_size: AvgPool kernel ((1,1) = none)."""
        B, C, T, H, W = x.shape
        xp = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W)
        if tuple(pool_size) != (1, 1):
            xp = F.avg_pool2d(xp, pool_size)
        Hp, Wp = xp.shape[-2:]
        xp = xp.view(B, T, C, Hp, Wp)
        pad = self.padding_tokens is not None and T < self.pad_len
        if pad:
            n = self.pad_len - T
            xp = torch.cat([xp, self.padding_tokens.view(1, 1, C, 1, 1).expand(B, n, C, Hp, Wp)], dim=1)
            if guidance is not None and self.padding_guidance is not None:
                guidance = torch.cat([guidance, self.padding_guidance.expand(B, n, -1)], dim=1)
        Tp = xp.shape[1]
        xp = xp.permute(0, 3, 4, 1, 2).reshape(B * Hp * Wp, Tp, C)  # (B H W) T C
        if guidance is not None:
            guidance = guidance[:, None].expand(B, Hp * Wp, Tp, guidance.shape[-1]).reshape(B * Hp * Wp, Tp, -1)
        xp = xp + self.attention(self.norm1(xp), guidance)
        xp = xp + self.MLP(self.norm2(xp))
        xp = xp.view(B, Hp, Wp, Tp, C).permute(0, 3, 4, 1, 2).reshape(B * Tp, C, Hp, Wp)
        xp = F.interpolate(xp, size=(H, W), mode='bilinear', align_corners=True)
        xp = xp.view(B, Tp, C, H, W)[:, :T].permute(0, 2, 1, 3, 4)
        return x + xp


class AggregatorLayer(nn.Module):
    def __init__(self, dim, text_guidance_dim, appearance_guidance_dim, num_heads, input_resolution, window_size,
                 pad_len):
        super().__init__()
        self.swin_block = SpatialAggregation(dim, appearance_guidance_dim, input_resolution, num_heads, window_size)
        self.attention = ClassAggregation(dim, text_guidance_dim, num_heads, pad_len)

    def forward(self, x, appearance_guidance, text_guidance, pool_size):
        x = self.swin_block(x, appearance_guidance)
        return self.attention(x, text_guidance, pool_size)


# ----------------------------------------------------------------------------------------------------------------
# decoder
# ----------------------------------------------------------------------------------------------------------------
class DoubleConv(nn.Module):
    """(Conv3x3 -> GroupNorm(C/16) -> ReLU) x 2, no conv bias."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(out_channels // 16, out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(out_channels // 16, out_channels), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class Up(nn.Module):
    """ConvT(x2) to ``in - guidance`` channels, concat guidance (batch-major tiling), DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x, guidance=None):
        """x: (B*T, C, H, W); guidance: (B, G, 2H, 2W)."""
        x = self.up(x)
        if guidance is not None:
            T = x.size(0) // guidance.size(0)
            g = guidance.unsqueeze(1).expand(-1, T, -1, -1, -1).reshape(-1, *guidance.shape[1:])
            x = torch.cat([x, g], dim=1)
        return self.conv(x)


@register_everywhere(MODELS, SEG_MODELS)
class CATSegHead(BaseModule):
    """CAT-Seg cost aggregation head (CVPR-2024 design).

    Args:
        text_dim: CLIP joint embedding dim D (512 B/16, 768 L/14) = dense and text channel dim.
        guidance_in_channels: channels of the two CLIP block taps (768 B, 1024 L).
        appearance_guidance_proj_dim / text_guidance_proj_dim: 128.
        decoder_dims: (64, 32); decoder_guidance_dims: ConvT outputs (256, 128); decoder_guidance_proj_dims (32, 16).
        num_layers: 2 aggregation layers; num_heads: 4; hidden_dim: 128.
        feature_resolution: CLIP grid (24, 24); window_size: 12 (shift 6).
        train_pooling_size: (2, 2); test_pooling_size: (1, 1) (class-aggregation pooling).
        prompt_channel: number of templates P (1).
        pad_len: 256 (pad with learnable tokens below, top-k above; 0 disables).
    """

    def __init__(self,
                 text_dim: int = 512,
                 guidance_in_channels: int = 768,
                 appearance_guidance_proj_dim: int = 128,
                 text_guidance_proj_dim: int = 128,
                 decoder_dims: Sequence[int] = (64, 32),
                 decoder_guidance_dims: Sequence[int] = (256, 128),
                 decoder_guidance_proj_dims: Sequence[int] = (32, 16),
                 num_layers: int = 2,
                 num_heads: int = 4,
                 hidden_dim: int = 128,
                 feature_resolution: Sequence[int] = (24, 24),
                 window_size: int = 12,
                 train_pooling_size: Sequence[int] = (2, 2),
                 test_pooling_size: Sequence[int] = (1, 1),
                 prompt_channel: int = 1,
                 pad_len: int = 256,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.pad_len = pad_len
        self.feature_resolution = tuple(feature_resolution)
        self.train_pooling_size = tuple(train_pooling_size)
        self.test_pooling_size = tuple(test_pooling_size)
        self.prompt_channel = prompt_channel
        # CLIP block taps -> decoder guidance (official CATSeg.upsample1/2): shallower tap feeds the 2x stage
        self.upsample1 = nn.ConvTranspose2d(guidance_in_channels, decoder_guidance_dims[0], kernel_size=2, stride=2)
        self.upsample2 = nn.ConvTranspose2d(guidance_in_channels, decoder_guidance_dims[1], kernel_size=4, stride=4)
        self.layers = nn.ModuleList([
            AggregatorLayer(hidden_dim, text_guidance_proj_dim, appearance_guidance_proj_dim, num_heads,
                            self.feature_resolution, window_size, pad_len) for _ in range(num_layers)])
        self.conv1 = nn.Conv2d(prompt_channel, hidden_dim, kernel_size=7, stride=1, padding=3)
        self.guidance_projection = nn.Sequential(
            nn.Conv2d(text_dim, appearance_guidance_proj_dim, 3, padding=1), nn.ReLU())
        self.text_guidance_projection = nn.Sequential(nn.Linear(text_dim, text_guidance_proj_dim), nn.ReLU())
        self.decoder_guidance_projection = nn.ModuleList([
            nn.Sequential(nn.Conv2d(d, dp, 3, padding=1), nn.ReLU())
            for d, dp in zip(decoder_guidance_dims, decoder_guidance_proj_dims)])
        self.decoder1 = Up(hidden_dim, decoder_dims[0], decoder_guidance_proj_dims[0])
        self.decoder2 = Up(decoder_dims[0], decoder_dims[1], decoder_guidance_proj_dims[1])
        self.head = nn.Conv2d(decoder_dims[1], 1, kernel_size=3, padding=1)

    def forward(self, dense: torch.Tensor, text: torch.Tensor, block_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            dense: (B, D, h, w) CLIP dense embedding (also the appearance guidance, used as given).
            text: (T, P, D) or (B, T, P, D) text embeddings.
            block_feats: [shallow (B, C, h, w), deep (B, C, h, w)] CLIP block outputs (CLS dropped).
        Returns:
            (B, T, 4h, 4w) logits; classes not in an image's top-``pad_len`` get -100.
        """
        B, D, h, w = dense.shape
        if (h, w) != self.feature_resolution:
            raise ValueError(f'CATSegHead built for a {self.feature_resolution} CLIP grid got {(h, w)}: resize the '
                             'CLIP input to feature_resolution * patch_size')
        if text.dim() == 3:
            text = text.unsqueeze(0).expand(B, -1, -1, -1)
        if text.shape[-1] != D or text.shape[2] != self.prompt_channel:
            raise ValueError(f'text embeddings {tuple(text.shape)} do not match dense dim {D} / '
                             f'prompt_channel {self.prompt_channel}')
        if len(block_feats) != 2:
            raise ValueError(f'CATSegHead needs 2 CLIP block taps for guidance, got {len(block_feats)}')
        T = text.shape[1]
        corr = catseg_cost_volume(dense, text)  # (B, P, T, h, w)
        classes = None
        if self.pad_len > 0 and T > self.pad_len:
            classes = catseg_select_classes(corr, self.pad_len)  # (B, K)
            text = torch.gather(text, 1, classes[:, :, None, None].expand(-1, -1, *text.shape[2:]))
            corr = catseg_cost_volume(dense, text)
        Tk = text.shape[1]
        # cost embedding: templates are conv channels
        x = self.conv1(corr.permute(0, 2, 1, 3, 4).reshape(B * Tk, -1, h, w))
        x = x.view(B, Tk, -1, h, w).permute(0, 2, 1, 3, 4)  # (B, C, T, h, w)
        app_guidance = self.guidance_projection(dense)
        dec_guidance = [proj(up(f)) for proj, up, f in zip(
            self.decoder_guidance_projection, (self.upsample1, self.upsample2), block_feats)]
        tg = F.normalize(F.normalize(text, dim=-1).mean(dim=-2), dim=-1)
        text_guidance = self.text_guidance_projection(tg)  # (B, T, 128)
        pool = self.train_pooling_size if self.training else self.test_pooling_size
        for layer in self.layers:
            x = layer(x, app_guidance, text_guidance, pool)
        C = x.shape[1]
        y = x.permute(0, 2, 1, 3, 4).reshape(B * Tk, C, h, w)
        y = self.decoder1(y, dec_guidance[0])
        y = self.decoder2(y, dec_guidance[1])
        logits = self.head(y).view(B, Tk, *y.shape[-2:])
        if classes is not None:
            out = logits.new_full((B, T, *logits.shape[-2:]), -100.0)
            out.scatter_(1, classes[:, :, None, None].expand(-1, -1, *logits.shape[-2:]), logits)
            logits = out
        return logits
