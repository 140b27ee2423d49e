"""Thin adapters that give open_clip's two ViT families one interface for the DeCLIP forward.

* ``EVATower`` wraps open_clip's ``TimmModel`` around a timm EVA02 trunk (separate q/k/v projections, no k bias,
  sub-LN inside attention and SwiGLU, 2-D RoPE on patch tokens).
* ``OpenAITower`` wraps open_clip's ``VisionTransformer`` (packed ``in_proj`` or, with ``split_qkv``, separate
  q/k/v weights; no inner LN).

Adapters hold references to the modules (they own no parameters), so parameter names stay open_clip's.
Token tensors are (B, 1+N, C) with the CLS token first; q/k/v are (B, heads, 1+N, d).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed


POS_EMBED_RESIZE = ('size', 'dino_scale')


def dino_v1_pos_embed(pos_embed: torch.Tensor, grid_hw: Tuple[int, int]) -> torch.Tensor:
    """DINO v1's position-embedding resize for a (1, 1 + N, C) embedding (CLS first, square N) -> (1, 1 + h*w, C).

    As ``interpolate_pos_encoding`` of the DINO repo (and the open_clip copies of ProxyCLIP, Trident and CorrCLIP):
    unchanged when the grid is square with N tokens, else bicubic interpolation (``align_corners=False``, no
    antialias) with ``scale_factor = ((h + 0.1) / sqrt(N), (w + 0.1) / sqrt(N))``.  Passing the scale factor (not
    the size) makes torch map output to input coordinates with that factor, so the result differs from a resize to
    (h, w).
    """
    n = pos_embed.shape[1] - 1
    h, w = int(grid_hw[0]), int(grid_hw[1])
    if h * w == n and h == w:
        return pos_embed
    side = int(math.sqrt(n))
    dim = pos_embed.shape[-1]
    patch = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((h + 0.1) / math.sqrt(n), (w + 0.1) / math.sqrt(n)), mode='bicubic')
    if tuple(patch.shape[-2:]) != (h, w):
        raise RuntimeError(f'dino_v1_pos_embed: interpolated grid {tuple(patch.shape[-2:])} != {(h, w)}')
    patch = patch.permute(0, 2, 3, 1).reshape(1, h * w, dim)
    return torch.cat([pos_embed[:, :1], patch], dim=1)


def resize_pos_embed(pos: torch.Tensor, old_hw: Tuple[int, int], new_hw: Tuple[int, int],
                     antialias: bool = False, mode: str = 'size') -> torch.Tensor:
    """Position embedding (1+h0*w0, C) or (1, 1+h0*w0, C), one leading CLS entry, for a new token grid.

    ``mode='size'``: timm's ``resample_abs_pos_embed`` (bicubic to the target size, align_corners=False);
    ``antialias=False`` follows the official EVA-CLIP / CLIPSelf code (timm's own dynamic-size path antialiases).
    ``mode='dino_scale'``: :func:`dino_v1_pos_embed` (scale factor ``(n + 0.1) / sqrt(N)``), as the open_clip
    copies of ProxyCLIP / Trident / CorrCLIP resize OpenAI CLIP's grid (square native grids only).
    Returns the same tensor when the grid already matches."""
    if mode not in POS_EMBED_RESIZE:
        raise ValueError(f'pos-embed resize mode must be one of {POS_EMBED_RESIZE}, got {mode!r}')
    p = pos[None] if pos.dim() == 2 else pos
    if mode == 'dino_scale':
        if old_hw[0] != old_hw[1]:
            raise ValueError(f"mode='dino_scale' needs a square native grid, got {tuple(old_hw)}")
        out = dino_v1_pos_embed(p, new_hw)
    else:
        out = resample_abs_pos_embed(p, list(new_hw), old_size=list(old_hw), num_prefix_tokens=1,
                                     antialias=antialias)
    if out is p:  # unchanged at the same grid
        return pos
    return out[0] if pos.dim() == 2 else out


def split_mha_qkv(mha: nn.MultiheadAttention) -> None:
    """Turn a packed ``in_proj_weight`` into separate ``q/k/v_proj_weight`` parameters (in place, same math)."""
    if not mha._qkv_same_embed_dim:
        return
    C = mha.embed_dim
    W = mha.in_proj_weight.data
    mha.q_proj_weight = nn.Parameter(W[:C].clone())
    mha.k_proj_weight = nn.Parameter(W[C:2 * C].clone())
    mha.v_proj_weight = nn.Parameter(W[2 * C:].clone())
    mha.register_parameter('in_proj_weight', None)
    mha._qkv_same_embed_dim = False


class EVATower:
    family = 'eva'

    def __init__(self, visual: nn.Module, pos_embed_antialias: bool = False, pos_embed_resize: str = 'size'):
        self.visual = visual
        self.pos_embed_antialias = pos_embed_antialias
        self.pos_embed_resize = pos_embed_resize
        rope = visual.trunk.rope
        if rope is not None and getattr(rope, 'feat_shape', None) is not None:
            # timm's cached mode ignores the shape given to get_embed: any other grid would get the native RoPE
            raise ValueError('EVATower needs the timm trunk built with dynamic_img_size=True (RoPE in bands mode, '
                             'as build_clip_model does), so that rope.get_embed(shape) follows the input grid')

    @property
    def trunk(self):
        return self.visual.trunk

    @property
    def blocks(self):
        return self.trunk.blocks

    @property
    def patch_size(self) -> int:
        return self.trunk.patch_embed.proj.kernel_size[0]

    @property
    def width(self) -> int:
        return self.trunk.embed_dim

    @property
    def num_heads(self) -> int:
        return self.blocks[0].attn.num_heads

    @property
    def embed_dim(self) -> int:
        return self.trunk.head.out_features

    def embed(self, img: torch.Tensor):
        """(B,3,H,W) -> tokens (B,1+N,C), grid (h,w), rope (N, 2*d)."""
        t = self.trunk
        x = t.patch_embed.proj(img)
        h, w = x.shape[-2:]
        x = t.patch_embed.norm(x.flatten(2).transpose(1, 2))
        x = torch.cat([t.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        pos = resize_pos_embed(t.pos_embed, t.patch_embed.grid_size, (h, w), self.pos_embed_antialias,
                               self.pos_embed_resize)
        x = t.norm_pre(t.pos_drop(x + pos.to(x.dtype)))
        # the trunk's own 2-D RoPE for this grid: positions arange(n) / n * ref_feat_shape per axis (as EVA-CLIP)
        rope = None if t.rope is None else t.rope.get_embed(shape=[h, w])
        return x, (h, w), rope

    def run_block(self, i: int, x: torch.Tensor, rope) -> torch.Tensor:
        return self.blocks[i](x, rope=rope)

    def qkv(self, blk, x: torch.Tensor):
        """q, k, v (B, heads, 1+N, d) of ``norm1(x)``, without RoPE."""
        a = blk.attn
        y = blk.norm1(x)
        B, N, _ = y.shape
        if a.qkv is not None:  # fused variant of timm's EVA
            bias = None if a.q_bias is None else torch.cat((a.q_bias, a.k_bias, a.v_bias))
            q, k, v = F.linear(y, a.qkv.weight, bias).reshape(B, N, 3, a.num_heads, -1).permute(2, 0, 3, 1, 4)
            return q, k, v
        q = a.q_proj(y).reshape(B, N, a.num_heads, -1).transpose(1, 2)
        k = a.k_proj(y).reshape(B, N, a.num_heads, -1).transpose(1, 2)
        v = a.v_proj(y).reshape(B, N, a.num_heads, -1).transpose(1, 2)
        return q, k, v

    def attn_out(self, blk, o: torch.Tensor) -> torch.Tensor:
        """Heads-concatenated attention output (B,1+N,C) -> inner LN -> proj."""
        return blk.attn.proj(blk.attn.norm(o))

    def residual_scale(self, blk, y: torch.Tensor) -> torch.Tensor:
        return y if blk.gamma_1 is None else blk.gamma_1 * y

    def decoupled_out(self, blk, o: torch.Tensor) -> torch.Tensor:
        """DeCLIP content (EVA): proj(inner_ln(A.V)); no residual, FFN or layer scale."""
        return self.attn_out(blk, o)

    def ffn(self, blk, x: torch.Tensor) -> torch.Tensor:
        y = blk.mlp(blk.norm2(x))
        return y if blk.gamma_2 is None else blk.gamma_2 * y

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final norm + projection of (B,N,C) tokens -> (B,N,D)."""
        return self.project(self.final_norm(tokens))

    def final_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.trunk.norm(tokens)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.trunk.head(tokens)

    def attend_block(self, i: int, m: torch.Tensor, x: torch.Tensor, allowed: torch.Tensor, rope) -> torch.Tensor:
        """Block ``i`` for extra query tokens: m (B,R,C) (prefix tokens: no RoPE) attend to the block's input tokens
        x (B,1+N,C) where ``allowed`` (B,R,1+N) is True; residual and FFN as the block.  -> (B,R,C)"""
        blk = self.blocks[i]
        a = blk.attn
        q = a.q_norm(self.qkv(blk, m)[0])
        _, k, v = self.qkv(blk, x)
        k = a.k_norm(k)
        if rope is not None:
            from timm.layers import apply_rot_embed_cat
            half = getattr(a, 'rotate_half', False)
            k = torch.cat([k[:, :, :1], apply_rot_embed_cat(k[:, :, 1:], rope, half=half)], dim=2).type_as(v)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], scale=a.scale)
        o = o.transpose(1, 2).reshape(m.shape)
        y = m + self.residual_scale(blk, self.attn_out(blk, o))
        return y + self.ffn(blk, y)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Image embedding (= open_clip ``encode_image``) from the last block's full output (B,1+N,C)."""
        t = self.trunk
        return self.visual.head(t.head(t.head_drop(t.fc_norm(t.norm(x)[:, 0]))))

    # parameter naming -----------------------------------------------------------------------------
    def block_prefix(self, i: int) -> str:
        return f'visual.trunk.blocks.{i}.'

    def block_part_suffixes(self, part: Optional[str]):
        return {
            None: ('',), 'q': ('attn.q_proj.', 'attn.q_bias'), 'k': ('attn.k_proj.',), 'v': ('attn.v_proj.', 'attn.v_bias'),
            'ffn': ('norm2.', 'mlp.', 'gamma_2'), 'attn': ('attn.', 'gamma_1'), 'norm1': ('norm1.',),
        }[part]

    def stem_prefixes(self):
        return ('visual.trunk.patch_embed.', 'visual.trunk.cls_token', 'visual.trunk.pos_embed',
                'visual.trunk.norm_pre.')

    def head_prefixes(self):
        return ('visual.trunk.norm.', 'visual.trunk.fc_norm.', 'visual.trunk.head.', 'visual.head.')


class OpenAITower:
    family = 'openai'

    def __init__(self, visual: nn.Module, pos_embed_antialias: bool = False, pos_embed_resize: str = 'size'):
        self.visual = visual
        self.pos_embed_antialias = pos_embed_antialias
        self.pos_embed_resize = pos_embed_resize

    @property
    def blocks(self):
        return self.visual.transformer.resblocks

    @property
    def patch_size(self) -> int:
        return self.visual.conv1.kernel_size[0]

    @property
    def width(self) -> int:
        return self.visual.conv1.out_channels

    @property
    def num_heads(self) -> int:
        return self.blocks[0].attn.num_heads

    @property
    def embed_dim(self) -> int:
        return self.visual.proj.shape[1]

    def embed(self, img: torch.Tensor):
        v = self.visual
        x = v.conv1(img)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        pos = resize_pos_embed(v.positional_embedding, v.grid_size, (h, w), self.pos_embed_antialias,
                               self.pos_embed_resize)
        x = v.ln_pre(v.patch_dropout(x + pos.to(x.dtype)))
        return x, (h, w), None

    def run_block(self, i: int, x: torch.Tensor, aux=None) -> torch.Tensor:
        return self.blocks[i](x)

    def qkv(self, blk, x: torch.Tensor):
        a = blk.attn
        y = blk.ln_1(x)
        B, N, C = y.shape
        bq, bk, bv = (None, None, None) if a.in_proj_bias is None else a.in_proj_bias.chunk(3)
        if a._qkv_same_embed_dim:
            wq, wk, wv = a.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = a.q_proj_weight, a.k_proj_weight, a.v_proj_weight
        h = a.num_heads
        return tuple(F.linear(y, wt, bs).reshape(B, N, h, -1).transpose(1, 2)
                     for wt, bs in ((wq, bq), (wk, bk), (wv, bv)))

    def attn_out(self, blk, o: torch.Tensor) -> torch.Tensor:
        return blk.attn.out_proj(o)

    def residual_scale(self, blk, y: torch.Tensor) -> torch.Tensor:
        return blk.ls_1(y)

    def decoupled_out(self, blk, o: torch.Tensor) -> torch.Tensor:
        """DeCLIP content (OpenAI): ls_1(out_proj(A.V)); no inner LN exists, no residual, no FFN."""
        return blk.ls_1(self.attn_out(blk, o))

    def ffn(self, blk, x: torch.Tensor) -> torch.Tensor:
        return blk.ls_2(blk.mlp(blk.ln_2(x)))

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final norm + projection of (B,N,C) tokens -> (B,N,D)."""
        return self.project(self.final_norm(tokens))

    def final_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.visual.ln_post(tokens)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens @ self.visual.proj

    def attend_block(self, i: int, m: torch.Tensor, x: torch.Tensor, allowed: torch.Tensor, aux=None) -> torch.Tensor:
        """Block ``i`` for extra query tokens: m (B,R,C) attend to the block's input tokens x (B,1+N,C) where
        ``allowed`` (B,R,1+N) is True (scale 1/sqrt(d)); residual and FFN as the block.  -> (B,R,C)"""
        blk = self.blocks[i]
        q = self.qkv(blk, m)[0]
        _, k, v = self.qkv(blk, x)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
        o = o.transpose(1, 2).reshape(m.shape)
        y = m + self.residual_scale(blk, self.attn_out(blk, o))
        return y + self.ffn(blk, y)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.visual._pool(x)
        return pooled @ self.visual.proj

    def block_prefix(self, i: int) -> str:
        return f'visual.transformer.resblocks.{i}.'

    def block_part_suffixes(self, part: Optional[str]):
        # With a packed in_proj, q, k and v share one weight: all three names are returned.
        qkv_shared = ('attn.in_proj_weight', 'attn.in_proj_bias')
        return {
            None: ('',), 'q': ('attn.q_proj_weight',) + qkv_shared, 'k': ('attn.k_proj_weight',) + qkv_shared,
            'v': ('attn.v_proj_weight',) + qkv_shared, 'ffn': ('ln_2.', 'mlp.', 'ls_2.'),
            'attn': ('attn.', 'ls_1.'), 'norm1': ('ln_1.',),
        }[part]

    def stem_prefixes(self):
        return ('visual.conv1.', 'visual.class_embedding', 'visual.positional_embedding', 'visual.ln_pre.')

    def head_prefixes(self):
        return ('visual.ln_post.', 'visual.proj')


def build_tower(visual: nn.Module, family: str, pos_embed_antialias: bool = False, pos_embed_resize: str = 'size'):
    return (EVATower if family == 'eva' else OpenAITower)(visual, pos_embed_antialias, pos_embed_resize)
