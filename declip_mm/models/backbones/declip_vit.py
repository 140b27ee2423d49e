"""DeCLIPViT: a CLIP ViT (OpenAI-style or EVA02-CLIP, via open_clip) with DeCLIP's decoupled last block.

Last-block modes (x = block input (B,1+N,C), CLS first; per head Q, K, V from LN1(x); s = attention scale):

=============  ======================================================================================
vanilla        the normal block (EVA: with RoPE)
maskclip       y = x + proj(inner_ln(V)); y = y + FFN(y)       (F-ViT's "no-attention" last block)
maskclip_cls   y = x_cls + proj(inner_ln(V)); y = y + FFN(y)   (CAT-Seg's OpenAI dense path)
qq / kk / vv   A = softmax(s QQ^T) / softmax(s KK^T) / softmax(s VV^T)
csa            A = softmax(s QQ^T) + softmax(s KK^T)           (a sum; rows total 2)
all            A = softmax(s (QQ^T + KK^T + VV^T) / 3)
=============  ======================================================================================

For the decoupled modes the content tokens are ``proj(inner_ln(concat_heads(A V)))`` (OpenAI: ``ls_1(out_proj(.))``)
with **no residual, no FFN, no layer scale and no RoPE**; CLS takes part in the attention and is dropped afterwards.
Dense content = final norm + projection of the patch tokens, (B, D, H/p, W/p).  Context = Q (and K / V as the mode
needs) of the last block, heads concatenated, CLS removed, (B, C, H/p, W/p) each.

External attention (ProxyCLIP-style, :meth:`DeCLIPViT.extract_attended`): the last block's V (CLS dropped) is
bilinearly resized from the CLIP grid to the grid of a given row-stochastic attention A (B, M, M), e.g. a VFM's
patch grid; the content tokens are the decoupled output of A.V (OpenAI: ``ls_1(out_proj(A V))``; EVA:
``proj(inner_ln(A V))``; no residual, no FFN), and the dense map is final norm + projection at that grid.
"""
import contextlib
import logging
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint as grad_checkpoint

from declip_mm.registry import DET_MODELS, MODELS, SEG_MODELS, register_everywhere
from declip_mm.utils.remote_files import is_remote
from .checkpoint import CheckpointError, load_clip_state_dict, load_into
from .freezing import apply_trainable_rule
from .pending_weights import check_weights_loaded, defer_missing_checkpoint
from .clip_builder import CLIP_MEAN, CLIP_STD, VisualOnly, build_clip_model, clip_family
from .towers import POS_EMBED_RESIZE, build_tower, split_mha_qkv

DECOUPLED_MODES = ('qq', 'kk', 'vv', 'csa', 'all')
MODES = ('vanilla', 'maskclip', 'maskclip_cls') + DECOUPLED_MODES
OUT_TYPES = ('feats', 'dense', 'context', 'cls')
CONTEXT_OF_MODE = {'kk': ('k',), 'vv': ('v',), 'csa': ('q', 'k'), 'all': ('q', 'k', 'v')}  # others: ('q',)


def decoupled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mode: str, scale: float) -> torch.Tensor:
    """Self-self attention of the decoupled block, (B,h,N,d) each -> A.V (B,h,N,d), via fused SDPA (exact)."""
    if mode == 'qq':
        return F.scaled_dot_product_attention(q, q, v, scale=scale)
    if mode == 'kk':
        return F.scaled_dot_product_attention(k, k, v, scale=scale)
    if mode == 'vv':
        return F.scaled_dot_product_attention(v, v, v, scale=scale)
    if mode == 'csa':
        return (F.scaled_dot_product_attention(q, q, v, scale=scale)
                + F.scaled_dot_product_attention(k, k, v, scale=scale))
    if mode == 'all':  # QQ^T + KK^T + VV^T == [Q,K,V][Q,K,V]^T
        qkv = torch.cat([q, k, v], dim=-1)
        return F.scaled_dot_product_attention(qkv, qkv, v, scale=scale / 3.0)
    raise ValueError(f'not a decoupled mode: {mode!r}')


def _tokens_to_map(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """(B,N,C) -> contiguous (B,C,h,w).

    Contiguous on purpose: the transposed view has channels-last strides for B > 1, convolutions keep them, and
    mmcv's RoIAlign (CPU and CUDA kernels read ``data_ptr`` as NCHW) then pools the wrong memory - detections
    changed with the batch size."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], hw[0], hw[1]).contiguous()


@register_everywhere(MODELS, DET_MODELS, SEG_MODELS)
class DeCLIPViT(BaseModule):
    """CLIP ViT backbone with DeCLIP's decoupled last block, for mmdet / mmseg / distillation.

    Args:
        model_name: open_clip config name: ``ViT-B-16``, ``ViT-L-14``, ``ViT-L-14-336``, ``EVA02-B-16``,
            ``EVA02-L-14``, ``EVA02-L-14-336``.
        model_overrides: dict deep-merged into the open_clip config (``tiny_clip_overrides()`` for tests).
        checkpoint: local checkpoint path (open_clip, EVA-CLIP release, DeCLIP ``epoch_k.pt``, our export).  A
            missing file is an error at the first forward / ``init_weights`` unless a full model checkpoint loaded
            in between provides the weights (``tools/test.py CONFIG TRAINED.pth``; see ``pending_weights``).
        out_indices: block indices whose outputs are returned as (B,C,H/p,W/p) maps (``feats``).
        last_feat_mode: mode of the last block when its index is in ``out_indices``.
        dense_mode: mode of the last block for the ``dense`` and ``context`` outputs.
        attn_scale: ``'auto'`` (EVA: none, OpenAI: 1/sqrt(d)), ``'none'`` (1.0) or ``'sqrt'`` (1/sqrt(d)).
        out_types: outputs of ``forward`` in order, from ``('feats', 'dense', 'context', 'cls')``. ``forward``
            returns a tuple: each feats map, then the other outputs (``context`` as a tuple of maps).
        normalize_dense: L2-normalise the dense map over channels.
        frozen: freeze everything, keep eval mode through ``train()`` and run under ``no_grad``.
        trainable: ``None``/``'all'``, an int N (the last N blocks) or a list of fnmatch patterns over
            ``named_parameters()`` names; everything else is frozen.
        frozen_patterns: fnmatch patterns frozen after ``trainable`` is applied.
        split_qkv: OpenAI family: separate ``q/k/v_proj_weight`` parameters (for q/v-only training rules).
        quick_gelu: see ``build_clip_model`` (default: True for OpenAI weights).
        pos_embed_antialias: antialiased bicubic position-embedding resize (timm's dynamic-size behaviour);
            default False follows the official EVA-CLIP code.
        pos_embed_resize: ``'size'`` (bicubic to the new grid; default) or ``'dino_scale'`` (bicubic with DINO's
            scale factor ``(n + 0.1) / sqrt(N)``, as the open_clip copies of ProxyCLIP / CorrCLIP / Trident resize
            OpenAI CLIP's grid; use it to reproduce them on OpenAI / MetaCLIP weights).
        with_cp: activation checkpointing of the blocks in training.
        strict_checkpoint: error (instead of warn) on visual weights missing from the checkpoint.
        pretrained: accepted for mmseg's ``model.pretrained`` convention: a local file is used as ``checkpoint``.
    """

    def __init__(self,
                 model_name: str = 'EVA02-B-16',
                 model_overrides: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 out_indices: Sequence[int] = (-1, ),
                 last_feat_mode: str = 'vanilla',
                 dense_mode: str = 'csa',
                 attn_scale: str = 'auto',
                 out_types: Sequence[str] = ('feats', ),
                 normalize_dense: bool = False,
                 frozen: bool = False,
                 trainable: Union[None, str, int, Sequence[str]] = None,
                 frozen_patterns: Sequence[str] = (),
                 split_qkv: bool = False,
                 quick_gelu: Optional[bool] = None,
                 pos_embed_antialias: bool = False,
                 pos_embed_resize: str = 'size',
                 with_cp: bool = False,
                 strict_checkpoint: bool = True,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if pretrained is not None:  # mmseg's EncoderDecoder forwards model.pretrained to the backbone
            if checkpoint is None and (os.path.isfile(str(pretrained)) or is_remote(pretrained)):
                checkpoint = pretrained
            else:
                raise ValueError(
                    f'DeCLIPViT got pretrained={pretrained!r} (from the config\'s model.pretrained?): it is not a local '
                    'file, http(s):// URL or hf-hub: file of a CLIP checkpoint. Set model.pretrained=None and pass DeCLIPViT(checkpoint=...) instead.')
        for name, mode in (('last_feat_mode', last_feat_mode), ('dense_mode', dense_mode)):
            if mode not in MODES:
                raise ValueError(f'{name}={mode!r} is not one of {MODES}')
        bad = [t for t in out_types if t not in OUT_TYPES]
        if bad or not out_types:
            raise ValueError(f'out_types must be a non-empty subset of {OUT_TYPES}, got {tuple(out_types)}')
        if pos_embed_resize not in POS_EMBED_RESIZE:
            raise ValueError(f'pos_embed_resize must be one of {POS_EMBED_RESIZE}, got {pos_embed_resize!r}')
        if attn_scale not in ('auto', 'none', 'sqrt'):
            raise ValueError(f"attn_scale must be 'auto', 'none' or 'sqrt', got {attn_scale!r}")
        self.model_name = model_name
        self.model_overrides = model_overrides
        self.family = clip_family(model_name)
        self.visual = build_clip_model(model_name, model_overrides, quick_gelu, with_text=False).visual
        self._tower = build_tower(self.visual, self.family, pos_embed_antialias, pos_embed_resize)
        if split_qkv and self.family == 'openai':
            for blk in self._tower.blocks:
                split_mha_qkv(blk.attn)
        self.num_blocks = len(self._tower.blocks)
        self.patch_size = self._tower.patch_size
        self.width = self._tower.width
        self.num_heads = self._tower.num_heads
        self.head_dim = self.width // self.num_heads
        self.embed_dim = self._tower.embed_dim
        self.mean, self.std = CLIP_MEAN, CLIP_STD
        idx = sorted({i % self.num_blocks for i in out_indices})
        if any(not -self.num_blocks <= i < self.num_blocks for i in out_indices):
            raise ValueError(f'out_indices {tuple(out_indices)} out of range for {self.num_blocks} blocks')
        if 'feats' in out_types and not idx:
            raise ValueError("out_types contains 'feats' but out_indices is empty")
        self.out_indices = tuple(idx)
        self.last_feat_mode = last_feat_mode
        self.dense_mode = dense_mode
        self.attn_scale_name = ('none' if self.family == 'eva' else 'sqrt') if attn_scale == 'auto' else attn_scale
        self.attn_scale = 1.0 if self.attn_scale_name == 'none' else self.head_dim ** -0.5
        self.out_types = tuple(out_types)
        self.normalize_dense = normalize_dense
        self.with_cp = with_cp
        self.checkpoint_meta = {}
        self._pending_checkpoint = None
        if checkpoint and not defer_missing_checkpoint(self, checkpoint):
            self.load_checkpoint(checkpoint, strict=strict_checkpoint)
        self.frozen = frozen
        self._apply_trainable(frozen, trainable, frozen_patterns)

    # ------------------------------------------------------------------ weights
    def load_checkpoint(self, path: str, strict: bool = True) -> None:
        """Load visual weights from any accepted checkpoint layout (see ``backbones.checkpoint``)."""
        sd, meta = load_clip_state_dict(path, VisualOnly(self.visual))
        load_into(self.visual, sd, 'visual.', self.model_name, strict_missing=strict)
        self.checkpoint_meta = meta
        saved_mode = meta.get('dense_mode')
        if saved_mode and saved_mode != self.dense_mode:
            print_log(f'{path} was exported for dense_mode={saved_mode!r} but this DeCLIPViT uses '
                      f'dense_mode={self.dense_mode!r}: its dense features will be wrong for what it was trained '
                      f'for (e.g. a csa checkpoint evaluated in qq mode)', logger='current', level=logging.WARNING)
        print_log(f'DeCLIPViT[{self.model_name}] loaded {path}', logger='current')

    def init_weights(self):
        # CLIP weights come from `checkpoint` in __init__; never re-initialise them here.  Training needs that file
        # (it was missing at construction and no full model checkpoint has filled the weights yet: raise).
        check_weights_loaded(self)
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            self.load_checkpoint(self.init_cfg['checkpoint'])
        self._is_init = True

    def _apply_trainable(self, frozen, trainable, frozen_patterns) -> None:
        def last_blocks(n):
            if not 0 <= n <= self.num_blocks:
                raise ValueError(f'trainable={n} blocks but the model has {self.num_blocks}')
            return {name for i in range(self.num_blocks - n, self.num_blocks) for name in self.block_param_names(i)}
        apply_trainable_rule(self, frozen, trainable, frozen_patterns, last_blocks)
        if frozen:
            self.eval()

    def train(self, mode: bool = True):
        super().train(mode and not self.frozen)
        return self

    def block_param_names(self, i: int, part: Optional[str] = None) -> list:
        """Parameter names of block ``i`` (``part`` in None, 'q', 'k', 'v', 'ffn', 'attn', 'norm1')."""
        i = i % self.num_blocks
        prefix = self._tower.block_prefix(i)
        sufs = self._tower.block_part_suffixes(part)
        return [n for n, _ in self.named_parameters() if n.startswith(prefix)
                and any(n[len(prefix):].startswith(s) for s in sufs)]

    def stem_param_names(self) -> list:
        return [n for n, _ in self.named_parameters() if n.startswith(self._tower.stem_prefixes())]

    def head_param_names(self) -> list:
        return [n for n, _ in self.named_parameters() if n.startswith(self._tower.head_prefixes())]

    # ------------------------------------------------------------------ forward
    def _check_input(self, img: torch.Tensor) -> None:
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'DeCLIPViT expects (B,3,H,W) images, got shape {tuple(img.shape)}')
        H, W = img.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f'input size {H}x{W} is not a multiple of the patch size {self.patch_size}; pad the '
                             f'image (e.g. mmdet Pad(size_divisor={self.patch_size}) / mmseg SegDataPreProcessor '
                             f'size_divisor) or resize it')

    def _run_block(self, i, x, aux):
        if self.with_cp and self.training and x.requires_grad:
            return grad_checkpoint(self._tower.run_block, i, x, aux, use_reentrant=False)
        return self._tower.run_block(i, x, aux)

    def _last_block(self, mode: str, x: torch.Tensor, aux, qkv_cache: dict) -> torch.Tensor:
        """Output tokens (B,1+N,C) of the last block in ``mode``."""
        tower = self._tower
        blk = tower.blocks[-1]
        if mode == 'vanilla':
            return self._run_block(self.num_blocks - 1, x, aux)
        if 'qkv' not in qkv_cache:
            qkv_cache['qkv'] = tower.qkv(blk, x)
        q, k, v = qkv_cache['qkv']
        B, _, N, _ = v.shape
        if mode in ('maskclip', 'maskclip_cls'):
            y = tower.residual_scale(blk, tower.attn_out(blk, v.transpose(1, 2).reshape(B, N, -1)))
            y = (x if mode == 'maskclip' else x[:, :1]) + y
            return y + tower.ffn(blk, y)
        o = decoupled_attention(q, k, v, mode, self.attn_scale)
        return tower.decoupled_out(blk, o.transpose(1, 2).reshape(B, N, -1))

    def extract(self, img: torch.Tensor, outputs: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """Compute the requested outputs.

        Returns a dict with the requested keys among:
            ``feats``: list of (B,C,H/p,W/p), one per ``out_indices`` (ascending);
            ``dense``: (B,D,H/p,W/p) content map after final norm + projection (``dense_mode``);
            ``context``: tuple of (B,C,H/p,W/p): (Q,) | (K,) | (V,) | (Q,K) for csa | (Q,K,V) for all;
            ``cls``: (B,D) the normal image embedding (open_clip ``encode_image``).
        """
        outputs = tuple(outputs or self.out_types)
        check_weights_loaded(self)
        self._check_input(img)
        if self.frozen:
            with torch.no_grad():
                return self._extract(img, outputs)
        return self._extract(img, outputs)

    def last_block_input(self, img: torch.Tensor, keep: Sequence[int] = ()):
        """Tokens entering the last block.  (B,3,H,W) -> (x (B,1+N,C), grid (h,w), aux (EVA: RoPE), {i: block i
        output (B,1+N,C) for i in ``keep``}).  No input check; see :meth:`extract`."""
        x, hw, aux = self._tower.embed(img)
        kept = {}
        for i in range(self.num_blocks - 1):
            x = self._run_block(i, x, aux)
            if i in keep:
                kept[i] = x
        return x, hw, aux, kept

    def last_block_values(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """V of the last block (from ``ln_1(x)``, heads concatenated, CLS dropped) as a map (B,C,h,w)."""
        v = self._tower.qkv(self._tower.blocks[-1], x)[2]
        B, h, N, d = v.shape
        return _tokens_to_map(v.transpose(1, 2).reshape(B, N, h * d)[:, 1:], hw)

    def attend_values(self, attn: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Dense map from an external last-block attention.

        Args:
            attn: (B, M, M) row-stochastic attention over the tokens of a (gh, gw) grid (M = gh*gw), the same for
                every head, or (B, heads, M, M) per head.
            values: (B, C, gh, gw) the last block's V map already at that grid (see :meth:`last_block_values`).

        Returns (B, D, gh, gw): final norm + projection of the decoupled output of A.V (no residual, no FFN).
        """
        B, C, gh, gw = values.shape
        v = values.flatten(2).transpose(1, 2)  # (B, M, C)
        if attn.shape[-2:] != (gh * gw, gh * gw):
            raise ValueError(f'attention {tuple(attn.shape)} does not fit a {gh}x{gw} value grid')
        if attn.dim() == 3:  # one A for all heads: concat_h(A V_h) == A concat_h(V_h)
            o = torch.bmm(attn.to(v.dtype), v)
        else:
            vh = v.reshape(B, gh * gw, self.num_heads, self.head_dim).transpose(1, 2)
            o = torch.matmul(attn.to(v.dtype), vh).transpose(1, 2).reshape(B, gh * gw, C)
        y = self._tower.decoupled_out(self._tower.blocks[-1], o)
        return _tokens_to_map(self._tower.head(y), (gh, gw))

    def extract_attended(self, img: torch.Tensor, attn: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """(B,3,H,W) image and an external attention (B, M, M) (or (B, heads, M, M)) over a (gh, gw) grid ->
        (B, D, gh, gw) dense map: the last block's V (CLS dropped) is resized bilinearly (align_corners=False)
        from the CLIP grid to (gh, gw), then :meth:`attend_values`.  ProxyCLIP's last block when A is its proxy
        attention."""
        check_weights_loaded(self)
        self._check_input(img)
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            x, hw, _, _ = self.last_block_input(img)
            v = self.last_block_values(x, hw)
            if tuple(hw) != tuple(grid):
                v = F.interpolate(v, size=tuple(grid), mode='bilinear', align_corners=False)
            return self.attend_values(attn, v)

    def extract_corr(self, img: torch.Tensor, attn: torch.Tensor, grid: Tuple[int, int], regions: torch.Tensor,
                     spatial_blocks: Sequence[int], alpha: float = 1.0, beta: float = 0.5) -> torch.Tensor:
        """CorrCLIP v1's forward (zdk258/CorrCLIP ``CorrCLIPv1/open_clip/transformer.py:580-632``) with an external
        restricted attention.

        Args:
            img: (B,3,H,W).
            attn: (B, M, M) restricted attention over a (gh, gw) ``grid`` (``CorrCLIPAttention``).
            regions: (B, R, h, w) bool region masks at the CLIP token grid (rows of all False are padding).
            spatial_blocks: 0-based blocks whose outputs (CLS + patches) the spatial branch averages (ViT-B: 5..9).
            alpha / beta: weights of the spatial and semantic branches.

        One mask class token (MCT) per region starts as the CLS token after the stem and passes every block
        attending only to that block's CLS and its region's patches (patches never see MCTs, so their path is the
        normal forward).  Main / spatial: the last block's V (from ``ln_1``) of its input and of the spatial mean,
        CLS dropped, resized bilinearly to ``grid``, A.V, the decoupled output (no residual, no FFN).  Semantic:
        each grid token takes the MCT output of the full last block of its region (token-grid masks resized by
        nearest).  Dense = project(norm(main) + alpha norm(spatial) + beta norm(semantic)).  Returns (B,D,gh,gw).
        """
        check_weights_loaded(self)
        self._check_input(img)
        tower = self._tower
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            x, hw, aux = tower.embed(img)
            if tuple(regions.shape[-2:]) != tuple(hw):
                raise ValueError(f'regions {tuple(regions.shape)} do not fit the {hw} token grid')
            B, R = regions.shape[:2]
            allowed = torch.cat([regions.new_ones((B, R, 1)), regions.flatten(2)], dim=2)  # CLS + own region
            m = x[:, :1].expand(B, R, x.shape[-1])
            keep = set(int(i) % self.num_blocks for i in spatial_blocks)
            spatial = []
            for i in range(self.num_blocks - 1):
                m = tower.attend_block(i, m, x, allowed, aux)
                x = self._run_block(i, x, aux)
                if i in keep:
                    spatial.append(x)
            m = tower.attend_block(self.num_blocks - 1, m, x, allowed, aux)  # semantic branch (full last block)
            v = self.last_block_values(torch.cat([x, torch.stack(spatial).mean(0)]), hw)  # (2B, C, h, w)
            if tuple(hw) != tuple(grid):
                v = F.interpolate(v, size=tuple(grid), mode='bilinear', align_corners=False)
            v = v.flatten(2).transpose(1, 2)
            o = torch.bmm(attn.to(v.dtype).repeat(2, 1, 1), v)
            main, spat = tower.decoupled_out(tower.blocks[-1], o).chunk(2)
            masks = F.interpolate(regions.to(m.dtype), size=tuple(grid), mode='nearest').flatten(2)  # (B, R, M)
            sem = torch.bmm(masks.transpose(1, 2), m)  # (B, M, C)
            y = (tower.final_norm(main) + alpha * tower.final_norm(spat) + beta * tower.final_norm(sem))
            return _tokens_to_map(tower.project(y), grid)

    def _extract(self, img, outputs):
        tower = self._tower
        want_feats = 'feats' in outputs
        keep = self.out_indices if want_feats else ()
        x, hw, aux, kept = self.last_block_input(img, keep)
        feats = [_tokens_to_map(kept[i][:, 1:], hw) for i in sorted(kept)]
        cache, qkv_cache, res = {}, {}, {}

        def last(mode):
            if mode not in cache:
                cache[mode] = self._last_block(mode, x, aux, qkv_cache)
            return cache[mode]

        if want_feats:
            if self.num_blocks - 1 in self.out_indices:
                feats.append(_tokens_to_map(last(self.last_feat_mode)[:, 1:], hw))
            res['feats'] = feats
        if 'dense' in outputs:
            dense = _tokens_to_map(tower.head(last(self.dense_mode)[:, 1:]), hw)
            res['dense'] = F.normalize(dense, dim=1) if self.normalize_dense else dense
        if 'cls' in outputs:
            res['cls'] = tower.pool(last('vanilla'))
        if 'context' in outputs:
            if 'qkv' not in qkv_cache:
                qkv_cache['qkv'] = tower.qkv(tower.blocks[-1], x)
            q, k, v = qkv_cache['qkv']
            named = dict(q=q, k=k, v=v)
            B, h, N, d = q.shape
            res['context'] = tuple(
                _tokens_to_map(named[c].transpose(1, 2).reshape(B, N, h * d)[:, 1:], hw)
                for c in CONTEXT_OF_MODE.get(self.dense_mode, ('q', )))
        return res

    def forward(self, img: torch.Tensor) -> tuple:
        """Tuple of the ``out_types`` outputs: feats maps first (one per out index), then the others in order."""
        res = self.extract(img, self.out_types)
        out = []
        for t in self.out_types:
            if t == 'feats':
                out.extend(res['feats'])
            else:
                out.append(res[t])
        return tuple(out)

    def encode_image(self, img: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B,3,H,W) -> (B,D) the normal CLIP image embedding (teacher CLS)."""
        cls = self.extract(img, ('cls', ))['cls']
        return F.normalize(cls, dim=-1) if normalize else cls


__all__ = ['DeCLIPViT', 'decoupled_attention', 'MODES', 'DECOUPLED_MODES', 'CheckpointError']
