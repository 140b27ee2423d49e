"""Per-mode attention of one anchor ("proxy") token in the last block, for figures and the visualisation hook."""
import torch

from .declip_vit import DeCLIPViT


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
    s = bb.attn_scale

    def sm(a, b, scale=s):
        return torch.softmax(scale * a[:, :, idx] @ b.transpose(-1, -2), dim=-1)  # (B, heads, A, 1+N)

    if mode == 'vanilla':
        if bb.family == 'eva' and aux is not None:
            from timm.layers import apply_rot_embed_cat
            q = torch.cat([q[:, :, :1], apply_rot_embed_cat(q[:, :, 1:], aux)], 2)
            k = torch.cat([k[:, :, :1], apply_rot_embed_cat(k[:, :, 1:], aux)], 2)
        attn = sm(q, k, bb.head_dim ** -0.5)
    elif mode in ('maskclip', 'maskclip_cls'):
        attn = torch.zeros(1, 1, len(anchors), x.shape[1])
        attn[..., torch.arange(len(anchors)), idx] = 1.0
    elif mode == 'qq':
        attn = sm(q, q)
    elif mode == 'kk':
        attn = sm(k, k)
    elif mode == 'vv':
        attn = sm(v, v)
    elif mode == 'csa':
        attn = (sm(q, q) + sm(k, k)) / 2
    elif mode == 'all':
        qkv = torch.cat([q, k, v], dim=-1)
        attn = sm(qkv, qkv, s / 3)
    else:
        raise ValueError(f'unknown mode {mode!r}')
    return attn.mean(dim=(0, 1))[:, 1:].reshape(len(anchors), h, w)
