"""Fused attention on every path: CAT-Seg's window attention on SDPA equals the explicit softmax form, and no
(batch x heads x N x N) attention tensor is created in the CAT-Seg head or in a distillation forward."""
import math

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from declip_mm.models.decode_heads.catseg_head import CATSegHead, GuidedSwinBlock
from perf_helpers import build_tiny_distiller, tiny_batch


class ShapeRecorder(TorchDispatchMode):
    """Records (op, shape, dtype) of every tensor an aten op returns."""

    def __init__(self):
        super().__init__()
        self.records = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.records.append((str(func), tuple(t.shape), t.dtype))
        return out


def explicit_window_attention(attn, x, mask):
    """The official Swin / CAT-Seg form: softmax(q k^T * scale + mask) v, written out (independent reference)."""
    Bn, N, _ = x.shape
    h = attn.num_heads
    q = attn.q(x).reshape(Bn, N, h, -1).transpose(1, 2) * attn.scale
    k = attn.k(x).reshape(Bn, N, h, -1).transpose(1, 2)
    v = attn.v(x[..., :attn.dim]).reshape(Bn, N, h, -1).transpose(1, 2)
    a = q @ k.transpose(-2, -1)
    if mask is not None:
        nw = mask.shape[0]
        a = (a.view(Bn // nw, nw, h, N, N) + mask[None, :, None]).view(Bn, h, N, N)
    a = a.softmax(dim=-1)
    return attn.proj((a @ v).transpose(1, 2).reshape(Bn, N, -1))


def _swin_block():
    torch.manual_seed(0)
    # 8x8 map, window 4, shift 2 -> 4 windows of N = 16 tokens, each window with its own mask
    return GuidedSwinBlock(dim=16, guidance_dim=8, input_resolution=(8, 8), num_heads=2, window_size=4,
                           shift_size=2)


def test_window_attention_sdpa_equals_explicit_softmax_shifted():
    blk = _swin_block()
    assert blk.attn_mask.shape == (4, 16, 16) and blk.sdpa_mask.shape == (1, 8, 16, 16)
    # the 4 windows' masks differ, so a window/head fold in the wrong order changes the result
    assert not torch.equal(blk.attn_mask[0], blk.attn_mask[3])
    x = (3 * torch.randn(3 * 4, 16, 24)).requires_grad_()
    ref = explicit_window_attention(blk.attn, x, blk.attn_mask)
    got = blk.attn(x, mask=blk.sdpa_mask)
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-4)
    # the mask matters at this input scale (else the comparison would not test it)
    assert (explicit_window_attention(blk.attn, x, None) - ref).abs().max() > 1e-2
    # the original (nW, N, N) mask is accepted too
    assert torch.allclose(blk.attn(x, mask=blk.attn_mask), ref, atol=1e-5, rtol=1e-4)
    g_ref = torch.autograd.grad(ref.square().sum(), [x, blk.attn.q.weight])
    g_got = torch.autograd.grad(got.square().sum(), [x, blk.attn.q.weight])
    for a, b in zip(g_got, g_ref):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)


def test_window_attention_sdpa_equals_explicit_softmax_unshifted():
    torch.manual_seed(1)
    blk = GuidedSwinBlock(dim=16, guidance_dim=8, input_resolution=(8, 8), num_heads=4, window_size=4, shift_size=0)
    assert blk.attn_mask is None and blk.sdpa_mask is None
    x = torch.randn(2 * 4, 16, 24)
    assert torch.allclose(blk.attn(x, None), explicit_window_attention(blk.attn, x, None), atol=1e-5, rtol=1e-4)


def test_swin_block_state_dict_unchanged():
    """The fused-layout mask is not persistent: official checkpoints (attn_mask only) still load strictly."""
    blk = _swin_block()
    sd = blk.state_dict()
    assert 'attn_mask' in sd and 'sdpa_mask' not in sd
    blk.load_state_dict(sd, strict=True)


def _square_tensors(records, sizes, min_dims=3):
    return [r for r in records if len(r[1]) >= min_dims and r[1][-1] == r[1][-2] and r[1][-1] in sizes]


def test_catseg_head_forward_has_no_attention_matrix():
    torch.manual_seed(0)
    head = CATSegHead(text_dim=16, guidance_in_channels=24, appearance_guidance_proj_dim=16,
                      text_guidance_proj_dim=16, decoder_dims=(32, 16), decoder_guidance_dims=(32, 16),
                      decoder_guidance_proj_dims=(8, 4), hidden_dim=32, num_heads=4, feature_resolution=(12, 12),
                      window_size=6, pad_len=8).train()
    B, T = 2, 5
    dense, text = torch.randn(B, 16, 12, 12), torch.randn(T, 1, 16)
    taps = [torch.randn(B, 24, 12, 12) for _ in range(2)]
    rec = ShapeRecorder()
    with rec:
        head(dense, text, taps).sum().backward()
    N = 36  # tokens per 6x6 window (no feature map of the head is 36 wide)
    nw_h = 4 * 4  # windows x heads: the size of the (constant) fused-layout mask
    bad = [r for r in _square_tensors(rec.records, {N}) if math.prod(r[1]) > nw_h * N * N]
    assert not bad, f'attention matrices materialised: {bad[:5]}'


def test_distillation_forward_has_no_attention_matrix():
    """Student (decoupled qq block + EVA blocks), teacher crops and the VFM: fused attention only; the one N x N
    tensor allowed is the per-image context-loss similarity (2-D)."""
    model = build_tiny_distiller('qq')
    fused = [m for m in model.modules() if hasattr(m, 'fused_attn')]
    assert fused and all(m.fused_attn for m in fused), 'timm fused attention is off'
    # 144 px student (9 x 9 tokens), 126 px VFM (9 x 9), 48 px crops (3 x 3): no token count equals a width
    data = model.data_preprocessor(tiny_batch(det=144), True)
    inp = data['inputs']
    assert inp['student'].shape[-1] == 144 and inp['vfm'].shape[-1] == 126
    gs = inp['student'].shape[-1] // 16
    gv = inp['vfm'].shape[-1] // 14
    gc = inp['crops'].shape[-1] // 16
    # attention sequence lengths: student / teacher (CLS + patches), DINOv2 (CLS + 4 registers + patches)
    seqs = {1 + gs * gs, 1 + gc * gc, 5 + gv * gv, gs * gs, gv * gv}
    rec = ShapeRecorder()
    with rec:
        losses = model.loss(inp, data['data_samples'])
        (losses['loss_content'] + losses['loss_context']).backward()
    bad = _square_tensors(rec.records, seqs)
    assert not bad, f'attention matrices materialised: {bad[:5]}'
    # the context-loss similarity is there, 2-D, per image, in fp32
    sims = [r for r in rec.records if r[1] == (gv * gv, gv * gv)]
    assert sims and all(r[2] == torch.float32 for r in sims)
