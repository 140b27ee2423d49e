"""Plain-torch re-implementations of the ORIGINAL forwards, written from the original code's math and fed with
weights in the ORIGINAL key names (EVA-CLIP release / OpenAI CLIP / CLIPSelf F-ViT / CAT-Seg).  They share no code
with declip_mm, so a converter that puts a tensor in the wrong place makes the outputs differ.

Also: original key layouts with shapes (written from reading the original model code), used to synthesise
checkpoints in the original format.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------------ key layouts
def eva_clip_visual_layout(width, depth, embed_dim, grid, patch=16, mlp_hidden=None, head_dim=64, prefix='visual.'):
    """EVA02-CLIP image tower (EVA-CLIP ``EVAVisionTransformer``: subln, SwiGLU ``w1/w2/w3`` + ``ffn_ln``,
    q/v biases, rope buffers shared by the tower and every block)."""
    hid = mlp_hidden or int(width * 2.6667)
    L = OrderedDict()
    L[prefix + 'cls_token'] = (1, 1, width)
    L[prefix + 'pos_embed'] = (1, grid * grid + 1, width)
    L[prefix + 'patch_embed.proj.weight'] = (width, 3, patch, patch)
    L[prefix + 'patch_embed.proj.bias'] = (width, )
    L[prefix + 'rope.freqs_cos'] = (grid * grid, head_dim)
    L[prefix + 'rope.freqs_sin'] = (grid * grid, head_dim)
    for i in range(depth):
        b = f'{prefix}blocks.{i}.'
        for n in ('norm1', 'norm2'):
            L[b + n + '.weight'] = L[b + n + '.bias'] = (width, )
        for n in ('q_proj', 'k_proj', 'v_proj'):
            L[b + f'attn.{n}.weight'] = (width, width)
        L[b + 'attn.q_bias'] = L[b + 'attn.v_bias'] = (width, )
        L[b + 'attn.rope.freqs_cos'] = L[b + 'attn.rope.freqs_sin'] = (grid * grid, head_dim)
        L[b + 'attn.inner_attn_ln.weight'] = L[b + 'attn.inner_attn_ln.bias'] = (width, )
        L[b + 'attn.proj.weight'] = (width, width)
        L[b + 'attn.proj.bias'] = (width, )
        L[b + 'mlp.w1.weight'] = L[b + 'mlp.w2.weight'] = (hid, width)
        L[b + 'mlp.w1.bias'] = L[b + 'mlp.w2.bias'] = (hid, )
        L[b + 'mlp.ffn_ln.weight'] = L[b + 'mlp.ffn_ln.bias'] = (hid, )
        L[b + 'mlp.w3.weight'] = (width, hid)
        L[b + 'mlp.w3.bias'] = (width, )
    L[prefix + 'norm.weight'] = L[prefix + 'norm.bias'] = (width, )
    L[prefix + 'head.weight'] = (embed_dim, width)
    L[prefix + 'head.bias'] = (embed_dim, )
    return L


def text_layout(width, layers, embed_dim, vocab=49408, ctx=77, prefix='', split_qkv=False):
    """CLIP text tower (OpenAI / EVA-CLIP ``TextTransformer`` naming; CAT-Seg's VPT CLIP splits q/k/v)."""
    L = OrderedDict()
    L[prefix + 'positional_embedding'] = (ctx, width)
    L[prefix + 'text_projection'] = (width, embed_dim)
    L[prefix + 'token_embedding.weight'] = (vocab, width)
    for i in range(layers):
        b = f'{prefix}transformer.resblocks.{i}.'
        if split_qkv:
            for n in 'qkv':
                L[b + f'attn.{n}_proj_weight'] = (width, width)
        else:
            L[b + 'attn.in_proj_weight'] = (3 * width, width)
        L[b + 'attn.in_proj_bias'] = (3 * width, )
        L[b + 'attn.out_proj.weight'] = (width, width)
        L[b + 'attn.out_proj.bias'] = (width, )
        for n in ('ln_1', 'ln_2'):
            L[b + n + '.weight'] = L[b + n + '.bias'] = (width, )
        L[b + 'mlp.c_fc.weight'] = (4 * width, width)
        L[b + 'mlp.c_fc.bias'] = (4 * width, )
        L[b + 'mlp.c_proj.weight'] = (width, 4 * width)
        L[b + 'mlp.c_proj.bias'] = (width, )
    L[prefix + 'ln_final.weight'] = L[prefix + 'ln_final.bias'] = (width, )
    return L


def openai_visual_layout(width, layers, embed_dim, grid, patch=16, prefix='visual.', split_qkv=False):
    """OpenAI CLIP ``VisualTransformer`` (CAT-Seg's VPT copy splits q/k/v and keeps the packed bias)."""
    L = OrderedDict()
    L[prefix + 'class_embedding'] = (width, )
    L[prefix + 'positional_embedding'] = (grid * grid + 1, width)
    L[prefix + 'proj'] = (width, embed_dim)
    L[prefix + 'conv1.weight'] = (width, 3, patch, patch)
    L[prefix + 'ln_pre.weight'] = L[prefix + 'ln_pre.bias'] = (width, )
    blocks = text_layout(width, layers, embed_dim, prefix=prefix, split_qkv=split_qkv)
    for k, v in blocks.items():
        if '.resblocks.' in k:
            L[k] = v
    L[prefix + 'ln_post.weight'] = L[prefix + 'ln_post.bias'] = (width, )
    return L


def randomize(layout, seed=0, scale=0.05):
    """Random tensors for a layout; norms around 1, ``num_batches_tracked`` integer, RoPE left to the caller."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, shape in layout.items():
        if k.endswith('num_batches_tracked'):
            out[k] = torch.tensor(7)
        elif k.endswith('running_var'):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(('norm1.weight', 'norm2.weight', 'norm.weight', 'ln.weight', '_ln.weight', 'ln_1.weight',
                         'ln_2.weight', 'ln_pre.weight', 'ln_post.weight', 'ln_final.weight')):
            out[k] = 1 + scale * torch.randn(shape, generator=g)
        else:
            out[k] = scale * torch.randn(shape, generator=g)
    return out


def eva_rope_tables(grid, head_dim, pt=16, theta=10000.):
    """EVA-CLIP ``VisionRotaryEmbeddingFast(dim=head_dim/2, pt_seq_len=pt, ft_seq_len=grid)``: (cos, sin),
    each (grid*grid, head_dim)."""
    dim = head_dim // 2
    freqs = 1. / (theta ** (torch.arange(0, dim, 2)[:dim // 2].float() / dim))
    t = torch.arange(grid) / grid * pt
    f = torch.einsum('i,f->if', t, freqs).repeat_interleave(2, dim=-1)  # (grid, dim): f0 f0 f1 f1 ...
    f = torch.cat([f[:, None, :].expand(grid, grid, dim), f[None, :, :].expand(grid, grid, dim)], dim=-1)
    f = f.reshape(grid * grid, 2 * dim)
    return f.cos(), f.sin()


# ------------------------------------------------------------------------------------------------ EVA-CLIP forward
def _ln(x, p, name, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], p[name + '.weight'], p[name + '.bias'], eps)


def _rotate_half(t):
    t2 = t.reshape(*t.shape[:-1], -1, 2)
    return torch.stack((-t2[..., 1], t2[..., 0]), dim=-1).flatten(-2)


def eva_clip_visual(p, img, num_heads, taps=(), last='vanilla', prefix='visual.', patch=16):
    """EVA-CLIP tower on release-named weights.  Returns dict(taps=[(B,C,h,w)], tokens=(B,1+N,C) after the last
    block (``last``: 'vanilla' or 'maskclip' = CLIPSelf's ``forward_without_attn``), cls=(B,D), dense=(B,D,h,w)
    (final norm + head of the patch tokens, not normalised))."""
    x = F.conv2d(img, p[prefix + 'patch_embed.proj.weight'], p[prefix + 'patch_embed.proj.bias'], stride=patch)
    B, C, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([p[prefix + 'cls_token'].expand(B, -1, -1), x], dim=1)
    pos = p[prefix + 'pos_embed']
    g0 = int(round((pos.shape[1] - 1) ** 0.5))
    if (h, w) != (g0, g0):  # CLIPSelf rescale_positional_embedding: bicubic, align_corners=False
        grid = pos[0, 1:].T.reshape(1, C, g0, g0)
        grid = F.interpolate(grid, (h, w), mode='bicubic', align_corners=False).reshape(C, h * w).T
        pos = torch.cat([pos[:, :1], grid[None]], dim=1)
    x = x + pos
    hd = C // num_heads
    assert h == w
    cos, sin = eva_rope_tables(h, hd)
    depth = 1 + max(int(k[len(prefix + 'blocks.'):].split('.')[0]) for k in p if k.startswith(prefix + 'blocks.'))
    outs = []
    for i in range(depth):
        b = f'{prefix}blocks.{i}.'
        y = _ln(x, p, b + 'norm1')
        if i == depth - 1 and last == 'maskclip':
            v = F.linear(y, p[b + 'attn.v_proj.weight'], p[b + 'attn.v_bias'])
            o = F.linear(_ln(v, p, b + 'attn.inner_attn_ln'), p[b + 'attn.proj.weight'], p[b + 'attn.proj.bias'])
        else:
            q = F.linear(y, p[b + 'attn.q_proj.weight'], p[b + 'attn.q_bias'])
            k = F.linear(y, p[b + 'attn.k_proj.weight'])
            v = F.linear(y, p[b + 'attn.v_proj.weight'], p[b + 'attn.v_bias'])
            q, k, v = (t.reshape(B, -1, num_heads, hd).transpose(1, 2) for t in (q, k, v))
            q = torch.cat([q[:, :, :1], q[:, :, 1:] * cos + _rotate_half(q[:, :, 1:]) * sin], dim=2)
            k = torch.cat([k[:, :, :1], k[:, :, 1:] * cos + _rotate_half(k[:, :, 1:]) * sin], dim=2)
            a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
            o = (a @ v).transpose(1, 2).reshape(B, -1, C)
            o = F.linear(_ln(o, p, b + 'attn.inner_attn_ln'), p[b + 'attn.proj.weight'], p[b + 'attn.proj.bias'])
        x = x + o
        y = _ln(x, p, b + 'norm2')
        hmid = F.silu(F.linear(y, p[b + 'mlp.w1.weight'], p[b + 'mlp.w1.bias'])) * \
            F.linear(y, p[b + 'mlp.w2.weight'], p[b + 'mlp.w2.bias'])
        x = x + F.linear(_ln(hmid, p, b + 'mlp.ffn_ln'), p[b + 'mlp.w3.weight'], p[b + 'mlp.w3.bias'])
        if i in taps:
            outs.append(x[:, 1:].transpose(1, 2).reshape(B, C, h, w))
    xn = _ln(x, p, prefix + 'norm')
    head = lambda t: F.linear(t, p[prefix + 'head.weight'], p[prefix + 'head.bias'])  # noqa: E731
    dense = head(xn[:, 1:]).transpose(1, 2).reshape(B, -1, h, w)
    return dict(taps=outs, tokens=x, cls=head(xn[:, 0]), dense=dense)


# ------------------------------------------------------------------------------------------------ OpenAI forward
def _mha(x, p, b, heads, mask=None):
    """OpenAI ``nn.MultiheadAttention`` (batch-first here); packed or split q/k/v weights, packed bias."""
    C = x.shape[-1]
    if b + 'attn.in_proj_weight' in p:
        W = p[b + 'attn.in_proj_weight']
    else:
        W = torch.cat([p[b + 'attn.q_proj_weight'], p[b + 'attn.k_proj_weight'], p[b + 'attn.v_proj_weight']])
    q, k, v = F.linear(x, W, p[b + 'attn.in_proj_bias']).split(C, dim=-1)
    B, N, _ = x.shape
    q, k, v = (t.reshape(B, N, heads, -1).transpose(1, 2) for t in (q, k, v))
    a = (q @ k.transpose(-2, -1)) * (C // heads) ** -0.5
    if mask is not None:
        a = a + mask
    o = (a.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
    return F.linear(o, p[b + 'attn.out_proj.weight'], p[b + 'attn.out_proj.bias'])


def _qgelu(x):
    return x * torch.sigmoid(1.702 * x)


def _mlp(x, p, b):
    return F.linear(_qgelu(F.linear(x, p[b + 'mlp.c_fc.weight'], p[b + 'mlp.c_fc.bias'])),
                    p[b + 'mlp.c_proj.weight'], p[b + 'mlp.c_proj.bias'])


def openai_visual(p, img, heads, taps=(), dense=False, prefix='visual.', patch=16):
    """OpenAI CLIP image tower; ``dense``: CAT-Seg's ``forward_dense`` last block (CLS + out_proj(V), then MLP) and
    ln_post + proj on all tokens.  Returns dict(taps, cls (B,D) or None, dense (B,D,h,w) or None)."""
    x = F.conv2d(img, p[prefix + 'conv1.weight'], stride=patch)
    B, C, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([p[prefix + 'class_embedding'].expand(B, 1, -1), x], dim=1)
    pos = p[prefix + 'positional_embedding']
    g0 = int(round((pos.shape[0] - 1) ** 0.5))
    if (h, w) != (g0, g0):  # CAT-Seg resized_pos_embed: bicubic, align_corners=False
        grid = pos[1:].reshape(1, g0, g0, C).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, (h, w), mode='bicubic', align_corners=False)[0].reshape(C, -1).T
        pos = torch.cat([pos[:1], grid])
    x = _ln(x + pos, p, prefix + 'ln_pre', 1e-5)
    layers = 1 + max(int(k.split('resblocks.')[1].split('.')[0]) for k in p if k.startswith(prefix + 'transformer.'))
    outs = []
    for i in range(layers):
        b = f'{prefix}transformer.resblocks.{i}.'
        if dense and i == layers - 1:
            y = _ln(x, p, b + 'ln_1', 1e-5)
            if b + 'attn.in_proj_weight' in p:
                W = p[b + 'attn.in_proj_weight']
            else:
                W = torch.cat([p[b + 'attn.q_proj_weight'], p[b + 'attn.k_proj_weight'], p[b + 'attn.v_proj_weight']])
            v = F.linear(y, W, p[b + 'attn.in_proj_bias'])[..., 2 * C:]
            v = F.linear(v, p[b + 'attn.out_proj.weight'], p[b + 'attn.out_proj.bias']) + x[:, :1]
            x = v + _mlp(_ln(v, p, b + 'ln_2', 1e-5), p, b)
        else:
            x = x + _mha(_ln(x, p, b + 'ln_1', 1e-5), p, b, heads)
            x = x + _mlp(_ln(x, p, b + 'ln_2', 1e-5), p, b)
        if i in taps:
            outs.append(x[:, 1:].transpose(1, 2).reshape(B, C, h, w))
    if dense:
        d = _ln(x, p, prefix + 'ln_post', 1e-5) @ p[prefix + 'proj']
        return dict(taps=outs, cls=None, dense=d[:, 1:].transpose(1, 2).reshape(B, -1, h, w))
    return dict(taps=outs, cls=_ln(x[:, 0], p, prefix + 'ln_post', 1e-5) @ p[prefix + 'proj'], dense=None)


def clip_text(p, tokens, heads, prefix=''):
    """CLIP text tower: causal attention, ln_final, EOT token (argmax id) @ text_projection."""
    x = F.embedding(tokens, p[prefix + 'token_embedding.weight']) + p[prefix + 'positional_embedding']
    N = x.shape[1]
    mask = torch.full((N, N), float('-inf')).triu(1)
    layers = 1 + max(int(k.split('resblocks.')[1].split('.')[0]) for k in p
                     if k.startswith(prefix + 'transformer.resblocks.'))
    for i in range(layers):
        b = f'{prefix}transformer.resblocks.{i}.'
        x = x + _mha(_ln(x, p, b + 'ln_1', 1e-5), p, b, heads, mask)
        x = x + _mlp(_ln(x, p, b + 'ln_2', 1e-5), p, b)
    x = _ln(x, p, prefix + 'ln_final', 1e-5)
    return x[torch.arange(x.shape[0]), tokens.argmax(-1)] @ p[prefix + 'text_projection']


# ------------------------------------------------------------------------------------------------ F-ViT pieces
def fvit_pyramid(p, taps, prefix='backbone.', eps=1e-5):
    """CLIPSelf ``EvaCLIPViT.interpolate1..4`` (eval-mode BN) on 4 maps."""
    def bn(x, n):
        return F.batch_norm(x, p[n + '.running_mean'], p[n + '.running_var'], p[n + '.weight'], p[n + '.bias'],
                            False, 0.0, eps)
    i1 = prefix + 'interpolate1.'
    y1 = F.conv_transpose2d(taps[0], p[i1 + '0.weight'], p[i1 + '0.bias'], stride=2)
    y1 = F.conv_transpose2d(F.gelu(bn(y1, i1 + '1')), p[i1 + '3.weight'], p[i1 + '3.bias'], stride=2)
    y2 = F.conv_transpose2d(taps[1], p[prefix + 'interpolate2.0.weight'], p[prefix + 'interpolate2.0.bias'],
                            stride=2)
    return y1, y2, taps[2], F.max_pool2d(taps[3], 2, 2)


def fvit_bbox_head_scores(p, cls_feat, vlm_feat, base_mask, alpha, beta, vlm_temperature,
                          prefix='roi_head.bbox_head.'):
    """CLIPSelf ``FViTBBoxHead.forward`` (test) from the cls branch input (N, F) of the last shared FC and the
    pooled CLIP features (N, D): returns the ensembled (N, K+1) scores."""
    x = F.relu(F.linear(cls_feat, p[prefix + 'cls_fcs.0.weight'], p[prefix + 'cls_fcs.0.bias']))
    emb = F.normalize(p[prefix + 'all_embeddings'], dim=0)
    s = (x / x.norm(dim=-1, keepdim=True)) @ emb * p[prefix + 'detect_temperature']
    s = s.softmax(-1)
    v = (F.normalize(vlm_feat, dim=-1) @ emb * vlm_temperature).softmax(-1)
    out = s.clone()
    out[:, base_mask] = s[:, base_mask] ** (1 - alpha) * v[:, base_mask] ** alpha
    out[:, ~base_mask] = s[:, ~base_mask] ** (1 - beta) * v[:, ~base_mask] ** beta
    return out


def convfc_shared(p, x, prefix='roi_head.bbox_head.', num_convs=4, num_fcs=2, eps=1e-5):
    """mmdet ``ConvFCBBoxHead`` shared part (conv -> BN -> ReLU, flatten, FC -> ReLU), eval mode."""
    for i in range(num_convs):
        c = f'{prefix}shared_convs.{i}.'
        x = F.conv2d(x, p[c + 'conv.weight'], padding=1)
        x = F.relu(F.batch_norm(x, p[c + 'bn.running_mean'], p[c + 'bn.running_var'], p[c + 'bn.weight'],
                                p[c + 'bn.bias'], False, 0.0, eps))
    x = x.flatten(1)
    for i in range(num_fcs):
        x = F.relu(F.linear(x, p[f'{prefix}shared_fcs.{i}.weight'], p[f'{prefix}shared_fcs.{i}.bias']))
    return x


def _bn(L, name, c):
    for n in ('weight', 'bias', 'running_mean', 'running_var'):
        L[f'{name}.{n}'] = (c, )
    L[f'{name}.num_batches_tracked'] = ()


def fvit_layout(width, depth, embed, grid, head_dim, fpn=256, conv=256, fc=512, num_classes=65, mask=False,
                rpn_norm=False, anchors=3, patch=16):
    """A CLIPSelf F-ViT mmdet 2.x checkpoint (``EvaCLIPViT`` + FPN(norm) + RPNHead/CustomRPNHead +
    FViTRoIHead(FViTBBoxHead [+ FCNMaskHead])), keys and shapes from CLIPSelf's F-ViT model code and configs."""
    L = eva_clip_visual_layout(width, depth, embed, grid, patch=patch, head_dim=head_dim, prefix='backbone.visual.')
    for i in (0, 3):
        L[f'backbone.interpolate1.{i}.weight'] = (width, width, 2, 2)
        L[f'backbone.interpolate1.{i}.bias'] = (width, )
    _bn(L, 'backbone.interpolate1.1', width)
    L['backbone.interpolate2.0.weight'] = (width, width, 2, 2)
    L['backbone.interpolate2.0.bias'] = (width, )
    for i in range(4):
        L[f'neck.lateral_convs.{i}.conv.weight'] = (fpn, width, 1, 1)
        _bn(L, f'neck.lateral_convs.{i}.bn', fpn)
        L[f'neck.fpn_convs.{i}.conv.weight'] = (fpn, fpn, 3, 3)
        _bn(L, f'neck.fpn_convs.{i}.bn', fpn)
    for i in range(2):
        L[f'rpn_head.rpn_conv.{i}.conv.weight'] = (fpn, fpn, 3, 3)
        if rpn_norm:
            _bn(L, f'rpn_head.rpn_conv.{i}.bn', fpn)
        else:
            L[f'rpn_head.rpn_conv.{i}.conv.bias'] = (fpn, )
    L['rpn_head.rpn_cls.weight'], L['rpn_head.rpn_cls.bias'] = (anchors, fpn, 1, 1), (anchors, )
    L['rpn_head.rpn_reg.weight'], L['rpn_head.rpn_reg.bias'] = (4 * anchors, fpn, 1, 1), (4 * anchors, )
    b = 'roi_head.bbox_head.'
    for i in range(4):
        L[f'{b}shared_convs.{i}.conv.weight'] = (conv, fpn if i == 0 else conv, 3, 3)
        _bn(L, f'{b}shared_convs.{i}.bn', conv)
    L[b + 'shared_fcs.0.weight'], L[b + 'shared_fcs.0.bias'] = (fc, conv * 49), (fc, )
    for n in ('shared_fcs.1', 'cls_fcs.0', 'reg_fcs.0'):
        L[f'{b}{n}.weight'], L[f'{b}{n}.bias'] = (fc, fc), (fc, )
    L[b + 'fc_cls.weight'], L[b + 'fc_cls.bias'] = (num_classes + 1, fc), (num_classes + 1, )
    L[b + 'fc_reg.weight'], L[b + 'fc_reg.bias'] = (4, fc), (4, )
    L[b + 'detect_temperature'] = ()
    L[b + 'all_embeddings'] = (fc, num_classes + 1)
    if mask:
        m = 'roi_head.mask_head.'
        for i in range(4):
            L[f'{m}convs.{i}.conv.weight'] = (256, fpn if i == 0 else 256, 3, 3)
            _bn(L, f'{m}convs.{i}.bn', 256)
        L[m + 'upsample.weight'], L[m + 'upsample.bias'] = (256, 256, 2, 2), (256, )
        L[m + 'conv_logits.weight'], L[m + 'conv_logits.bias'] = (1, 256, 1, 1), (1, )
    return L


def catseg_layout(text_dim, guidance_dim, hidden=128, app_proj=128, text_proj=128, dec_dims=(64, 32),
                  dec_guid=(256, 128), dec_guid_proj=(32, 16), num_layers=2, window=12, grid=24, prompts=1,
                  pad_len=256):
    """CAT-Seg detectron2 keys outside the CLIP: ``sem_seg_head.predictor.transformer.*`` (``Aggregator``:
    ``AggregatorLayer`` = ``SwinTransformerBlockWrapper`` (two guided Swin blocks, the shifted one with its
    ``attn_mask`` buffer) + ``ClassTransformerLayer``; cost embedding ``conv1``; guidance projections; two ``Up``
    decoders with GroupNorm ``DoubleConv``; ``head``) and the model-level ``upsample1/2``."""
    L = OrderedDict()
    L['upsample1.weight'], L['upsample1.bias'] = (guidance_dim, dec_guid[0], 2, 2), (dec_guid[0], )
    L['upsample2.weight'], L['upsample2.bias'] = (guidance_dim, dec_guid[1], 4, 4), (dec_guid[1], )
    t = 'sem_seg_head.predictor.transformer.'
    n_win = (grid // window) ** 2
    for i in range(num_layers):
        s = f'{t}layers.{i}.swin_block.'
        for blk in ('block_1', 'block_2'):
            b = s + blk + '.'
            if blk == 'block_2':
                L[b + 'attn_mask'] = (n_win, window * window, window * window)
            for n in ('norm1', 'norm2'):
                L[b + n + '.weight'] = L[b + n + '.bias'] = (hidden, )
            L[b + 'attn.q.weight'] = L[b + 'attn.k.weight'] = (hidden, hidden + app_proj)
            L[b + 'attn.v.weight'] = L[b + 'attn.proj.weight'] = (hidden, hidden)
            for n in 'qkv':
                L[b + f'attn.{n}.bias'] = (hidden, )
            L[b + 'attn.proj.bias'] = (hidden, )
            L[b + 'mlp.fc1.weight'], L[b + 'mlp.fc1.bias'] = (4 * hidden, hidden), (4 * hidden, )
            L[b + 'mlp.fc2.weight'], L[b + 'mlp.fc2.bias'] = (hidden, 4 * hidden), (hidden, )
        L[s + 'guidance_norm.weight'] = L[s + 'guidance_norm.bias'] = (app_proj, )
        a = f'{t}layers.{i}.attention.'
        L[a + 'padding_tokens'] = (1, 1, hidden)
        L[a + 'padding_guidance'] = (1, 1, text_proj)
        L[a + 'attention.q.weight'] = L[a + 'attention.k.weight'] = (hidden, hidden + text_proj)
        L[a + 'attention.v.weight'] = (hidden, hidden)
        for n in 'qkv':
            L[a + f'attention.{n}.bias'] = (hidden, )
        L[a + 'MLP.0.weight'], L[a + 'MLP.0.bias'] = (4 * hidden, hidden), (4 * hidden, )
        L[a + 'MLP.2.weight'], L[a + 'MLP.2.bias'] = (hidden, 4 * hidden), (hidden, )
        for n in ('norm1', 'norm2'):
            L[a + n + '.weight'] = L[a + n + '.bias'] = (hidden, )
    L[t + 'conv1.weight'], L[t + 'conv1.bias'] = (hidden, prompts, 7, 7), (hidden, )
    L[t + 'guidance_projection.0.weight'] = (app_proj, text_dim, 3, 3)
    L[t + 'guidance_projection.0.bias'] = (app_proj, )
    L[t + 'text_guidance_projection.0.weight'] = (text_proj, text_dim)
    L[t + 'text_guidance_projection.0.bias'] = (text_proj, )
    for i, (d, dp) in enumerate(zip(dec_guid, dec_guid_proj)):
        L[t + f'decoder_guidance_projection.{i}.0.weight'] = (dp, d, 3, 3)
        L[t + f'decoder_guidance_projection.{i}.0.bias'] = (dp, )
    ins = (hidden, dec_dims[0])
    for i, (cin, cout, gp) in enumerate(zip(ins, dec_dims, dec_guid_proj)):
        d = f'{t}decoder{i + 1}.'
        L[d + 'up.weight'], L[d + 'up.bias'] = (cin, cin - gp, 2, 2), (cin - gp, )
        L[d + 'conv.double_conv.0.weight'] = (cout, cin, 3, 3)
        L[d + 'conv.double_conv.3.weight'] = (cout, cout, 3, 3)
        for j in (1, 4):
            L[d + f'conv.double_conv.{j}.weight'] = L[d + f'conv.double_conv.{j}.bias'] = (cout, )
    L[t + 'head.weight'], L[t + 'head.bias'] = (1, dec_dims[1], 3, 3), (1, )
    return L


def ovdquo_vit_layout(width, depth, embed, grid, head_dim, taps=3, d=256, ffn=2048, enc=6, dec=6, queries=1000,
                      text_dim=None, vocab=101, heads=8, levels=3, points=4, patch=16):
    """An OV-DQUO ViT checkpoint's ``model`` / ``ema_model`` entry (``OV_DQUO.state_dict()``), keys and shapes
    from its model code: ``models/ov_dquo/ov_dquo.py`` (``input_proj`` 1x1 conv + GroupNorm per tap, ``label_enc``
    (num_label_sampled + 1 rows), the shared ``class_embed`` and per-layer ``bbox_embed`` lists, also assigned to
    ``transformer.decoder`` and, as separate copies, to ``transformer.enc_out_*``), ``models/backbone/ov_backbone.py``
    (``Joiner`` index 0 = ``EvaCLIPViT``: ``interpolate1`` ConvT + the EVA tower with its persistent RoPE tables),
    ``models/transformer/ov_deformable_transformer.py`` / ``deformable_transformer.py`` (encoder and decoder layers,
    ``level_embed``, ``tgt_embed``, ``enc_output(_norm)``, ``text_proj``, ``ref_point_head``, decoder ``norm``).
    Same keys and shapes as ``state_dict()`` of the original model (checked once against it, built outside this
    repository); the order differs inside the EVA tower.  Entries that are the same tensor appear under every name."""
    text_dim = text_dim or embed
    L = OrderedDict()
    t = 'transformer.'
    L[t + 'level_embed'] = (levels, d)

    def msda(prefix):
        L[prefix + 'sampling_offsets.weight'] = (heads * levels * points * 2, d)
        L[prefix + 'sampling_offsets.bias'] = (heads * levels * points * 2, )
        L[prefix + 'attention_weights.weight'] = (heads * levels * points, d)
        L[prefix + 'attention_weights.bias'] = (heads * levels * points, )
        for n in ('value_proj', 'output_proj'):
            L[prefix + n + '.weight'], L[prefix + n + '.bias'] = (d, d), (d, )

    def lin(prefix, o, i):
        L[prefix + '.weight'], L[prefix + '.bias'] = (o, i), (o, )

    def mlp(prefix, dims):
        for j, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
            lin(f'{prefix}.layers.{j}', o, i)

    for i in range(enc):
        b = f'{t}encoder.layers.{i}.'
        msda(b + 'self_attn.')
        L[b + 'norm1.weight'] = L[b + 'norm1.bias'] = (d, )
        lin(b + 'linear1', ffn, d)
        lin(b + 'linear2', d, ffn)
        L[b + 'norm2.weight'] = L[b + 'norm2.bias'] = (d, )
    for i in range(dec):
        b = f'{t}decoder.layers.{i}.'
        msda(b + 'cross_attn.')
        L[b + 'norm1.weight'] = L[b + 'norm1.bias'] = (d, )
        L[b + 'self_attn.in_proj_weight'], L[b + 'self_attn.in_proj_bias'] = (3 * d, d), (3 * d, )
        lin(b + 'self_attn.out_proj', d, d)
        L[b + 'norm2.weight'] = L[b + 'norm2.bias'] = (d, )
        lin(b + 'linear1', ffn, d)
        lin(b + 'linear2', d, ffn)
        L[b + 'norm3.weight'] = L[b + 'norm3.bias'] = (d, )
    L[t + 'decoder.norm.weight'] = L[t + 'decoder.norm.bias'] = (d, )
    mlp(t + 'decoder.ref_point_head', (2 * d, d, d))
    for i in range(dec):
        mlp(f'{t}decoder.bbox_embed.{i}', (d, d, d, 4))
    for i in range(dec):
        lin(f'{t}decoder.class_embed.{i}', 1, d)
    L[t + 'tgt_embed.weight'] = (queries, d)
    lin(t + 'enc_output', d, d)
    L[t + 'enc_output_norm.weight'] = L[t + 'enc_output_norm.bias'] = (d, )
    mlp(t + 'text_proj', (text_dim, 128, d))
    mlp(t + 'enc_out_bbox_embed', (d, d, d, 4))
    lin(t + 'enc_out_class_embed', 1, d)
    L['label_enc.weight'] = (vocab, d)
    for i in range(taps):
        L[f'input_proj.{i}.0.weight'], L[f'input_proj.{i}.0.bias'] = (d, width, 1, 1), (d, )
        L[f'input_proj.{i}.1.weight'] = L[f'input_proj.{i}.1.bias'] = (d, )
    L['backbone.0.interpolate1.0.weight'], L['backbone.0.interpolate1.0.bias'] = (width, width, 2, 2), (width, )
    L.update(eva_clip_visual_layout(width, depth, embed, grid, patch=patch, head_dim=head_dim,
                                    prefix='backbone.0.visual.'))
    for i in range(dec):
        mlp(f'bbox_embed.{i}', (d, d, d, 4))
    for i in range(dec):
        lin(f'class_embed.{i}', 1, d)
    return L


def ovdquo_tie(p, dec=6):
    """Make a randomised OV-DQUO layout consistent with the original's sharing: one objectness Linear for all decoder
    layers, the ``transformer.decoder.*_embed`` names the same tensors as ``class_embed`` / ``bbox_embed``."""
    for k in list(p):
        if k.startswith('class_embed.') and not k.startswith('class_embed.0.'):
            p[k] = p['class_embed.0.' + k.split('.', 2)[2]]
    for k in list(p):
        if k.startswith('transformer.decoder.class_embed.') or k.startswith('transformer.decoder.bbox_embed.'):
            p[k] = p[k[len('transformer.decoder.'):]]
    return p


def modified_resnet_layout(width, layers, embed, grid, prefix=''):
    """OpenAI CLIP ``ModifiedResNet`` with OV-DQUO's frozen BN (weight, bias, running_mean, running_var; no
    ``num_batches_tracked``): 3-conv stem, Bottleneck stages (1x1 -> 3x3 -> 1x1 x4, avg-pool-conv-BN shortcut when
    the stride or width changes), ``attnpool`` (positional embedding (g*g+1, 32 width), q/k/v, c_proj -> embed).
    OV-DQUO models/clip/model.py (``ModifiedResNet`` / ``Bottleneck`` / ``AttentionPool2d``)."""
    L = OrderedDict()

    def bn(name, c):
        for n in ('weight', 'bias', 'running_mean', 'running_var'):
            L[f'{prefix}{name}.{n}'] = (c, )
    L[prefix + 'conv1.weight'] = (width // 2, 3, 3, 3)
    bn('bn1', width // 2)
    L[prefix + 'conv2.weight'] = (width // 2, width // 2, 3, 3)
    bn('bn2', width // 2)
    L[prefix + 'conv3.weight'] = (width, width // 2, 3, 3)
    bn('bn3', width)
    inplanes = width
    for s, n in enumerate(layers):
        planes = width * 2 ** s
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1
            p = f'layer{s + 1}.{b}.'
            L[prefix + p + 'conv1.weight'] = (planes, inplanes, 1, 1)
            bn(p + 'bn1', planes)
            L[prefix + p + 'conv2.weight'] = (planes, planes, 3, 3)
            bn(p + 'bn2', planes)
            L[prefix + p + 'conv3.weight'] = (4 * planes, planes, 1, 1)
            bn(p + 'bn3', 4 * planes)
            if stride > 1 or inplanes != 4 * planes:
                L[prefix + p + 'downsample.0.weight'] = (4 * planes, inplanes, 1, 1)
                bn(p + 'downsample.1', 4 * planes)
            inplanes = 4 * planes
    c5 = 32 * width
    L[prefix + 'attnpool.positional_embedding'] = (grid * grid + 1, c5)
    for n in ('k_proj', 'q_proj', 'v_proj'):
        L[prefix + f'attnpool.{n}.weight'], L[prefix + f'attnpool.{n}.bias'] = (c5, c5), (c5, )
    L[prefix + 'attnpool.c_proj.weight'], L[prefix + 'attnpool.c_proj.bias'] = (embed, c5), (embed, )
    return L


def ovdquo_rn_layout(width, layers, embed, grid, text_width, text_layers, d=256, ffn=2048, enc=6, dec=6,
                     queries=1000, vocab=49, extra_levels=1):
    """An OV-DQUO ResNet (OV-COCO RN50 / RN50x4) checkpoint's ``model`` entry, from its model code:
    ``models/backbone/ov_backbone.py`` ``ResNetCLIP`` = ``BackboneBase.body`` (torchvision ``IntermediateLayerGetter``
    over the ModifiedResNet: stem and layer1-layer4, no attnpool) + ``attn_pool`` and ``layer4`` (the same modules
    again); ``models/ov_dquo/ov_dquo.py:73-89`` ``input_proj`` = 1x1 conv + GN on C3 (8 width ch.) and C4 (16 width)
    plus conv3x3 s2 + GN on C4 (``in_channels`` leaked from the loop = C4); ``models/backbone/base.py``
    ``Classifier`` = the CLIP text tower as ``classifier.*`` (positional embedding with all 77 rows); the DETR part as
    the ViT model (``ovdquo_vit_layout``)."""
    L = OrderedDict((k, v) for k, v in ovdquo_vit_layout(64, 1, embed, 2, 16, taps=0, d=d, ffn=ffn, enc=enc, dec=dec,
                                                         queries=queries, text_dim=embed, vocab=vocab).items()
                    if not k.startswith('backbone.'))
    rn = modified_resnet_layout(width, layers, embed, grid)
    for k, v in rn.items():
        if not k.startswith('attnpool.'):
            L['backbone.0.body.' + k] = v
    for k, v in rn.items():
        if k.startswith('attnpool.'):
            L['backbone.0.attn_pool.' + k[len('attnpool.'):]] = v
    for k, v in rn.items():
        if k.startswith('layer4.'):
            L['backbone.0.' + k] = v
    c3, c4 = 8 * width, 16 * width
    for i, (c, k) in enumerate([(c3, 1), (c4, 1)] + [(c4, 3)] * extra_levels):
        L[f'input_proj.{i}.0.weight'], L[f'input_proj.{i}.0.bias'] = (d, c, k, k), (d, )
        L[f'input_proj.{i}.1.weight'] = L[f'input_proj.{i}.1.bias'] = (d, )
    L.update(text_layout(text_width, text_layers, embed, prefix='classifier.'))
    return L


def ovdquo_tie_rn(p):
    """``backbone.0.layer4.*`` is ``backbone.0.body.layer4.*`` (one module under two names)."""
    for k in list(p):
        if k.startswith('backbone.0.layer4.'):
            p[k] = p['backbone.0.body.' + k[len('backbone.0.'):]]
    return p
