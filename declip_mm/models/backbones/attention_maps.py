"""Per-mode attention of anchor ("proxy") tokens in the last block, for figures and the demo."""
import torch

from .declip_vit import DeCLIPViT


def attention_weights(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mode: str, scale: float) -> torch.Tensor:
    """The explicit attention matrix A of a decoupled mode, (B,h,N,d) each -> (B,h,N,N), so that
    ``A @ v == decoupled_attention(q, k, v, mode, scale)`` (``csa`` rows sum to 2)."""
    def sm(a, b, s=scale):
        return torch.softmax(s * a @ b.transpose(-1, -2), dim=-1)
    if mode == 'qq':
        return sm(q, q)
    if mode == 'kk':
        return sm(k, k)
    if mode == 'vv':
        return sm(v, v)
    if mode == 'csa':
        return sm(q, q) + sm(k, k)
    if mode == 'all':
        qkv = torch.cat([q, k, v], dim=-1)
        return sm(qkv, qkv, scale / 3)
    raise ValueError(f'not a decoupled mode: {mode!r}')


@torch.no_grad()
def anchor_attention(bb: DeCLIPViT, img: torch.Tensor, mode: str, anchors) -> torch.Tensor:
    """Attention rows of anchor patch tokens in the last block of ``bb`` for ``mode``, averaged over heads.

    Args:
        img: (1, 3, H, W) normalised image.
        anchors: list of (row, col) grid positions.
    Returns:
        (len(anchors), h, w) attention over patch tokens (CLS column dropped).  ``vanilla`` uses the normal block
        attention (EVA: with RoPE, scale 1/sqrt(d)); ``maskclip*`` attend only to themselves (one-hot);
        decoupled modes follow their formula (``csa`` halved so rows sum to 1).
    """
    tower = bb._tower
    x, (h, w), aux = tower.embed(img)
    for i in range(bb.num_blocks - 1):
        x = tower.run_block(i, x, aux)
    q, k, v = tower.qkv(tower.blocks[-1], x)
    idx = torch.tensor([1 + r * w + c for r, c in anchors])
    if mode == 'vanilla':
        if bb.family == 'eva' and aux is not None:
            from timm.layers import apply_rot_embed_cat
            q = torch.cat([q[:, :, :1], apply_rot_embed_cat(q[:, :, 1:], aux)], 2)
            k = torch.cat([k[:, :, :1], apply_rot_embed_cat(k[:, :, 1:], aux)], 2)
        attn = torch.softmax(bb.head_dim ** -0.5 * q[:, :, idx] @ k.transpose(-1, -2), dim=-1)
    elif mode in ('maskclip', 'maskclip_cls'):
        attn = torch.zeros(1, 1, len(anchors), x.shape[1])
        attn[..., torch.arange(len(anchors)), idx] = 1.0
    else:
        attn = attention_weights(q, k, v, mode, bb.attn_scale)[:, :, idx]
        if mode == 'csa':
            attn = attn / 2
    return attn.mean(dim=(0, 1))[:, 1:].reshape(len(anchors), h, w)
