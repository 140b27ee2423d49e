"""Plain-torch re-implementations of OV-DQUO's ResNet CLIP path, written from the original code's formulas
(xiaomoguhz/OV-DQUO at b6c09c6; file:line in the comments) and fed with state dicts in OpenAI CLIP key names.
They share no code with declip_mm: RoIAlign is torchvision's (as in the original), not mmcv's.

Also: a synthetic OpenAI-style ModifiedResNet state dict with random weights (BN statistics included) and a
TorchScript archive writer, so tests load weights exactly as from OpenAI's ``RN50.pt``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

EPS = 1e-5  # models/backbone/base.py:44


def frozen_bn(x, sd, name):
    """FrozenBatchNorm2d, models/backbone/base.py:37-47: x * w/sqrt(rv+eps) + (b - rm * w/sqrt(rv+eps))."""
    scale = sd[name + '.weight'] * (sd[name + '.running_var'] + EPS).rsqrt()
    bias = sd[name + '.bias'] - sd[name + '.running_mean'] * scale
    return x * scale[None, :, None, None] + bias[None, :, None, None]


def bottleneck(x, sd, p, stride):
    """models/clip/model.py:43-56 (avgpool after conv2 when stride > 1; avgpool-conv-BN shortcut)."""
    out = F.relu(frozen_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1'))
    out = F.relu(frozen_bn(F.conv2d(out, sd[p + 'conv2.weight'], padding=1), sd, p + 'bn2'))
    if stride > 1:
        out = F.avg_pool2d(out, stride)
    out = frozen_bn(F.conv2d(out, sd[p + 'conv3.weight']), sd, p + 'bn3')
    if p + 'downsample.0.weight' in sd:
        idt = F.avg_pool2d(x, stride) if stride > 1 else x
        idt = frozen_bn(F.conv2d(idt, sd[p + 'downsample.0.weight']), sd, p + 'downsample.1')
    else:
        idt = x
    return F.relu(out + idt)


def resnet_stages(img, sd, prefix='visual.'):
    """models/clip/model.py:184-197: 3-conv stem + avgpool 2, then layer1..layer4 -> [C2, C3, C4, C5]."""
    x = F.relu(frozen_bn(F.conv2d(img, sd[prefix + 'conv1.weight'], stride=2, padding=1), sd, prefix + 'bn1'))
    x = F.relu(frozen_bn(F.conv2d(x, sd[prefix + 'conv2.weight'], padding=1), sd, prefix + 'bn2'))
    x = F.relu(frozen_bn(F.conv2d(x, sd[prefix + 'conv3.weight'], padding=1), sd, prefix + 'bn3'))
    x = F.avg_pool2d(x, 2)
    outs = []
    for layer in range(1, 5):
        x = res_layer(x, sd, f'{prefix}layer{layer}.', 1 if layer == 1 else 2)
        outs.append(x)
    return outs


def res_layer(x, sd, p, stride):
    n = 1 + max(int(k[len(p):].split('.')[0]) for k in sd if k.startswith(p))
    for i in range(n):
        x = bottleneck(x, sd, f'{p}{i}.', stride if i == 0 else 1)
    return x


def attnpool(x, sd, heads, prefix='visual.attnpool.'):
    """CLIP's attention pool, models/clip/model.py:109-137: tokens [mean, cells] + pe, the mean token is the one
    query, keys/values are all HW+1 tokens; multi-head, scale head_dim^-1/2, c_proj.  x (N, C, g, g) -> (N, D)."""
    N, C = x.shape[:2]
    t = x.flatten(2).transpose(1, 2)  # (N, HW, C)
    t = torch.cat([t.mean(1, keepdim=True), t], 1) + sd[prefix + 'positional_embedding']
    q = F.linear(t[:, :1], sd[prefix + 'q_proj.weight'], sd[prefix + 'q_proj.bias'])
    k = F.linear(t, sd[prefix + 'k_proj.weight'], sd[prefix + 'k_proj.bias'])
    v = F.linear(t, sd[prefix + 'v_proj.weight'], sd[prefix + 'v_proj.bias'])
    return _one_query_mha(q[:, 0], k, v, heads, sd, prefix)


def _one_query_mha(q, k, v, heads, sd, prefix):
    """q (N, C), k/v (N, L, C) -> c_proj(concat_h softmax(q_h k_h^T / sqrt(d)) v_h): attention.py:411-443."""
    N, L, C = k.shape
    d = C // heads
    out = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        a = torch.einsum('nc,nlc->nl', q[:, sl], k[:, :, sl]) * d ** -0.5
        out.append(torch.einsum('nl,nlc->nc', a.softmax(-1), v[:, :, sl]))
    return F.linear(torch.cat(out, -1), sd[prefix + 'c_proj.weight'], sd[prefix + 'c_proj.bias'])


def cell_rois(boxes_cxcywh, cells):
    """models/transformer/base.py:398-401: cxcywh -> xyxy, x * valid w cells, y * valid h cells."""
    out = []
    for b, (w, h) in zip(boxes_cxcywh, cells):
        cx, cy, bw, bh = b.unbind(-1)
        out.append(torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1))
    return out


def approx_attnpool_rois(c5, rois, sd, heads, g, prefix='visual.attnpool.'):
    """models/transformer/base.py:417-487 (``sample_feature_rn``, extra_conv=False): q/k/v projections (with bias)
    at every C5 cell, torchvision RoIAlign g x g (aligned), q = mean + W_q pe[0], k/v + W pe[1:] (no bias), one
    query attention without the mean token, c_proj, L2 norm."""
    pe = sd[prefix + 'positional_embedding']
    f = c5.permute(0, 2, 3, 1)
    maps = [F.linear(f, sd[prefix + n + '.weight'], sd[prefix + n + '.bias']).permute(0, 3, 1, 2)
            for n in ('q_proj', 'k_proj', 'v_proj')]
    q, k, v = (torchvision.ops.roi_align(m, rois, (g, g), 1.0, aligned=True).flatten(2) for m in maps)
    q = q.mean(-1) + pe[:1] @ sd[prefix + 'q_proj.weight'].T
    k = k.transpose(1, 2) + pe[1:] @ sd[prefix + 'k_proj.weight'].T
    v = v.transpose(1, 2) + pe[1:] @ sd[prefix + 'v_proj.weight'].T
    return F.normalize(_one_query_mha(q, k, v, heads, sd, prefix), dim=-1)


def res5_attnpool_rois(c4, rois, sd, heads, g):
    """models/transformer/base.py:406-415,487 (extra_conv=True): RoIAlign 2g x 2g -> layer4 -> attnpool -> norm."""
    x = torchvision.ops.roi_align(c4, rois, (2 * g, 2 * g), 1.0, aligned=True)
    return F.normalize(attnpool(res_layer(x, sd, 'visual.layer4.', 2), sd, heads), dim=-1)


def valid_cells_nearest(valid_hw, padded_hw, feat_hw):
    """Valid (w, h) cells of a nearest-downsampled padding mask, counted by index: output cell j reads input
    pixel floor(j * in / out) (PyTorch 'nearest'), so the valid cells are the j with floor(j * in / out) < valid
    (models/backbone/base.py:73 downsamples, models/transformer/ov_deformable_transformer.py:193 counts)."""
    out = []
    for size, pad, n in zip(valid_hw, padded_hw, feat_hw):
        scale = torch.tensor(pad / n, dtype=torch.float32)  # PyTorch computes the scale in float32
        out.append(int((torch.arange(n, dtype=torch.float32) * scale).floor().lt(size).sum()))
    return float(out[1]), float(out[0])


# ------------------------------------------------------------------------------------------- synthetic weights
def random_resnet_state(layout: dict, seed: int = 0, tiny_var: bool = True) -> dict:
    """Random values for a ModifiedResNet state dict layout (name -> tensor): convs ~ N(0, 1/fan_in), BN affine
    ~ 1 +- 0.2 / +-0.1, running means +-0.1, running variances in [1e-5, 0.5] (so that BN's eps matters),
    attnpool weights ~ N(0, 1/C), positional embedding ~ 0.3 N(0, 1/C)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in layout.items():
        if k.endswith('num_batches_tracked'):
            sd[k] = torch.tensor(7)
        elif k.endswith('running_var'):
            r = torch.rand(v.shape, generator=g)
            sd[k] = torch.where(r < 0.3, 1e-5 + 1e-5 * r, 0.5 * r)
        elif k.endswith('running_mean') or k.endswith('.bias'):
            sd[k] = 0.1 * torch.randn(v.shape, generator=g)
        elif v.dim() == 1:
            sd[k] = 1 + 0.2 * torch.randn(v.shape, generator=g)
        else:
            fan = v[0].numel() if 'positional_embedding' not in k else v.shape[1]
            sd[k] = torch.randn(v.shape, generator=g) * fan ** -0.5
            if 'positional_embedding' in k:
                sd[k] *= 0.3
    return sd


class _Node(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript_archive(sd: dict, path: str) -> str:
    """A TorchScript archive holding ``sd`` (parameters; ``num_batches_tracked`` as buffers), like OpenAI's files."""
    root = _Node()
    for key, value in sd.items():
        *parts, leaf = key.split('.')
        mod = root
        for part in parts:
            if not hasattr(mod, part):
                mod.add_module(part, _Node())
            mod = getattr(mod, part)
        if leaf == 'num_batches_tracked':
            mod.register_buffer(leaf, value.clone())
        else:
            mod.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    torch.jit.script(root).save(path)
    return path
