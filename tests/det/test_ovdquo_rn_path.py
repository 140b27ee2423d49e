"""OV-DQUO's ResNet CLIP path: region embeddings on C5 (query assignment) and C4 (scoring), and the RN text
embeddings (80 ImageNet templates, 15-token context).  References: plain torch in ``clip_rn_reference`` with
torchvision's RoIAlign, following the original's formulas."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from declip_mm.models.backbones import CLIPResNet, tiny_resnet_overrides  # package exports = registered on import
from declip_mm.models.roi_heads import ResNetC4RegionEmbed, ResNetC5RegionEmbed
from declip_mm.models.roi_heads.clip_region_features import padding_mask_from_metas, valid_cells
from declip_mm.models.text import DeCLIPTextEncoder
from declip_mm.models.text.templates import IMAGENET_TEMPLATES
from declip_mm.registry import DET_MODELS

from .clip_rn_reference import (approx_attnpool_rois, attnpool, cell_rois, random_resnet_state,
                                res5_attnpool_rois, valid_cells_nearest)

OVR = tiny_resnet_overrides()  # C4 128 / C5 256 channels, attnpool grid g = 3, 8 heads of 32
G = torch.Generator().manual_seed(0)


@pytest.fixture(scope='module')
def rn(tmp_path_factory):
    """A tiny CLIPResNet with random weights (incl. BN statistics and positional embedding) in float64."""
    bb = CLIPResNet('RN50', OVR)
    sd = random_resnet_state(bb.state_dict(), seed=3)
    bb.load_state_dict(sd)
    return bb.double(), {k: v.double() for k, v in bb.state_dict().items()}


def _batch():
    """Two images padded to 512 x 704 (h x w): the nearest-downsampled mask gives 43 valid C4 columns for the
    683-px image (683 / 16 = 42.7) and 22 C5 columns (21.3); boxes include the whole image and one beyond it."""
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(2, 512, 704, dtype=torch.bool)
    mask[0, :500, :683] = False
    mask[1, :400, :704] = False
    boxes = []
    for _ in range(2):
        cxcy = torch.rand(6, 2, generator=g, dtype=torch.float64) * 0.8 + 0.1
        wh = torch.rand(6, 2, generator=g, dtype=torch.float64) * 0.5 + 0.05
        fixed = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.9, 0.95, 0.4, 0.3]], dtype=torch.float64)
        boxes.append(torch.cat([fixed, torch.cat([cxcy, wh], 1)]))
    c4 = torch.randn(2, 128, 32, 44, generator=g, dtype=torch.float64)
    c5 = torch.randn(2, 256, 16, 22, generator=g, dtype=torch.float64)
    return mask, boxes, c4, c5


def _cells(mask, feat):
    valid = [((~m).any(1).sum().item(), (~m).any(0).sum().item()) for m in mask]
    return [valid_cells_nearest(v, mask.shape[-2:], feat.shape[-2:]) for v in valid]


def test_valid_cells_follow_the_nearest_downsampled_mask():
    mask, _, c4, c5 = _batch()
    assert valid_cells(mask, c4.shape).tolist() == [[43., 32.], [44., 25.]] == [list(c) for c in _cells(mask, c4)]
    assert valid_cells(mask, c5.shape).tolist() == [list(c) for c in _cells(mask, c5)]
    assert valid_cells(None, c5.shape).tolist() == [[22., 16.]] * 2
    metas = [dict(batch_input_shape=(512, 704), img_shape=(500, 683)), dict(batch_input_shape=(512, 704),
                                                                             img_shape=(400, 704))]
    assert torch.equal(padding_mask_from_metas(metas), mask)
    assert padding_mask_from_metas([dict(batch_input_shape=(64, 64), img_shape=(64, 64))]) is None


def test_c5_region_embed_is_the_approximate_attnpool(rn):
    """Query assignment: q/k/v at every C5 cell, RoIAlign g x g, q = mean + W_q pe[0], keys = the g*g cells only
    (no mean token), scale head_dim^-1/2, c_proj, L2 norm; boxes scaled by the mask's valid cells."""
    bb, sd = rn
    mask, boxes, c4, c5 = _batch()
    init_default_scope('mmdet')
    got = DET_MODELS.build(dict(type='ResNetC5RegionEmbed'))(bb, (c4, c5), boxes, mask)
    rois = cell_rois(boxes, _cells(mask, c5))
    ref = approx_attnpool_rois(c5, rois, sd, heads=8, g=3)
    assert got.shape == (16, 32)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    # the same boxes as normalised corners
    xyxy = [torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1) for b in boxes]
    torch.testing.assert_close(ResNetC5RegionEmbed(box_format='xyxy')(bb, (c4, c5), xyxy, mask), ref,
                               rtol=1e-10, atol=1e-10)
    empty = ResNetC5RegionEmbed()(bb, (c4, c5), [b[:0] for b in boxes], mask)
    assert empty.shape == (0, 32)


def test_c5_exact_attnpool_option(rn):
    """``exact_attnpool=True``: CLIP's own attnpool (mean token among the keys) on the RoIAligned C5 — a different
    embedding from the default approximation."""
    import torchvision
    bb, sd = rn
    mask, boxes, c4, c5 = _batch()
    rois = cell_rois(boxes, _cells(mask, c5))
    ref = F.normalize(attnpool(torchvision.ops.roi_align(c5, rois, (3, 3), 1.0, aligned=True), sd, 8), dim=-1)
    got = ResNetC5RegionEmbed(exact_attnpool=True)(bb, (c4, c5), boxes, mask)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    assert (got - ResNetC5RegionEmbed()(bb, (c4, c5), boxes, mask)).abs().max() > 1e-3


def test_c4_region_embed_is_res5_attnpool(rn):
    """Scoring: RoIAlign 2g x 2g on C4 -> res5 (frozen BN) -> attnpool with the loaded pe -> L2 norm."""
    bb, sd = rn
    mask, boxes, c4, c5 = _batch()
    rois = cell_rois(boxes, _cells(mask, c4))
    ref = res5_attnpool_rois(c4, rois, sd, heads=8, g=3)
    init_default_scope('mmdet')
    for chunk in (256, 3):  # chunking is memory only
        got = DET_MODELS.build(dict(type='ResNetC4RegionEmbed', chunk_size=chunk))(bb, (c4, c5), boxes, mask)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    assert ResNetC4RegionEmbed()(bb, (c4, c5), [b[:0] for b in boxes], mask).shape == (0, 32)


def test_region_embeds_on_backbone_outputs(rn):
    """End to end on CLIPResNet's own tuple (C3, C4, C5) with the default in_index; no gradients."""
    bb, sd = rn
    img = torch.randn(2, 3, 160, 224, generator=G, dtype=torch.float64)
    feats = bb(img)
    boxes = [torch.tensor([[0.5, 0.5, 0.6, 0.7]], dtype=torch.float64)] * 2
    c5_ref = approx_attnpool_rois(feats[2], cell_rois(boxes, [(7., 5.)] * 2), sd, 8, 3)
    c4_ref = res5_attnpool_rois(feats[1], cell_rois(boxes, [(14., 10.)] * 2), sd, 8, 3)
    got5, got4 = ResNetC5RegionEmbed()(bb, feats, boxes), ResNetC4RegionEmbed()(bb, feats, boxes)
    torch.testing.assert_close(got5, c5_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got4, c4_ref, rtol=1e-10, atol=1e-10)
    assert got5.grad_fn is None and got4.grad_fn is None


def test_region_embeds_under_bf16_autocast(rn):
    """AMP: bfloat16 maps are cast back to the float32 CLIP weights and computed without autocast (mmcv's RoIAlign
    has no bfloat16 kernel); the result is float32 and equals the float64 reference on the same rounded maps."""
    import copy
    bb, sd = rn
    bb32 = copy.deepcopy(bb).float()
    mask, boxes, c4, c5 = _batch()
    c4, c5 = c4.to(torch.bfloat16), c5.to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got5 = ResNetC5RegionEmbed()(bb32, (c4, c5), [b.float() for b in boxes], mask)
        got4 = ResNetC4RegionEmbed()(bb32, (c4, c5), [b.float() for b in boxes], mask)
    assert got5.dtype == got4.dtype == torch.float32
    ref5 = approx_attnpool_rois(c5.double(), cell_rois(boxes, _cells(mask, c5)), sd, heads=8, g=3)
    ref4 = res5_attnpool_rois(c4.double(), cell_rois(boxes, _cells(mask, c4)), sd, heads=8, g=3)
    torch.testing.assert_close(got5.double(), ref5, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got4.double(), ref4, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ text (RN)
LONG = 'an extraordinarily long category name with many words that overflow fifteen tokens'


def _text_reference(enc, names, ctx=15):
    """models/backbone/base.py:168-210: tokens truncated to ``ctx`` with EOT forced last (clip.py:218-225), the
    text tower run at length ``ctx`` (positional_embedding[:ctx], causal ctx x ctx mask), EOT (argmax id) output
    @ text_projection; per-sentence L2 norm, mean over the 80 templates, L2 norm."""
    sd = {k: v.double() for k, v in enc.clip.state_dict().items()}
    tok = enc.tokenizer
    rows = []
    for n in names:
        ids = []
        for t in IMAGENET_TEMPLATES:
            seq = [tok.sot_token_id] + tok.encode(t.format(n)) + [tok.eot_token_id]
            if len(seq) > ctx:
                seq = seq[:ctx - 1] + [tok.eot_token_id]
            ids.append(seq + [0] * (ctx - len(seq)))
        ids = torch.tensor(ids)
        x = sd['token_embedding.weight'][ids] + sd['positional_embedding'][:ctx]
        mask = torch.full((ctx, ctx), float('-inf'), dtype=torch.float64).triu(1)
        for i in range(2):
            b = f'transformer.resblocks.{i}.'
            y = F.layer_norm(x, (32, ), sd[b + 'ln_1.weight'], sd[b + 'ln_1.bias'])
            q, k, v = F.linear(y, sd[b + 'attn.in_proj_weight'], sd[b + 'attn.in_proj_bias']).split(32, -1)
            q, k, v = (z.reshape(80, ctx, 2, 16).transpose(1, 2) for z in (q, k, v))
            a = ((q @ k.transpose(-1, -2)) / 4.0 + mask).softmax(-1)
            x = x + F.linear((a @ v).transpose(1, 2).reshape(80, ctx, 32), sd[b + 'attn.out_proj.weight'],
                             sd[b + 'attn.out_proj.bias'])
            y = F.layer_norm(x, (32, ), sd[b + 'ln_2.weight'], sd[b + 'ln_2.bias'])
            h = F.linear(y, sd[b + 'mlp.c_fc.weight'], sd[b + 'mlp.c_fc.bias'])
            x = x + F.linear(h * torch.sigmoid(1.702 * h), sd[b + 'mlp.c_proj.weight'], sd[b + 'mlp.c_proj.bias'])
        x = F.layer_norm(x, (32, ), sd['ln_final.weight'], sd['ln_final.bias'])
        e = x[torch.arange(80), ids.argmax(-1)] @ sd['text_projection']
        rows.append(F.normalize(F.normalize(e, dim=-1).mean(0), dim=-1))
    return torch.stack(rows)


@pytest.fixture(scope='module')
def rn_text():
    torch.manual_seed(0)
    return DeCLIPTextEncoder('RN50', tiny_resnet_overrides(), context_length=15).double()


def test_rn_text_embeddings_ctx15(rn_text):
    """80 ImageNet templates (the original's list), raw names, context 15 with truncation + forced EOT; the
    wildcard "object" through the same pipeline.  The long name's sentences exceed 15 tokens."""
    assert len(IMAGENET_TEMPLATES) == 80 and IMAGENET_TEMPLATES[0] == 'a bad photo of a {}.' \
        and IMAGENET_TEMPLATES[-1] == 'a tattoo of the {}.'
    names = ['traffic light', 'object', LONG]
    assert len(rn_text.tokenizer.encode(IMAGENET_TEMPLATES[0].format(LONG))) + 2 > 15
    got = rn_text.embed_classes(names, IMAGENET_TEMPLATES)
    torch.testing.assert_close(got, _text_reference(rn_text, names), rtol=1e-10, atol=1e-10)
    tokens = rn_text.tokenize([IMAGENET_TEMPLATES[0].format(LONG), 'a cat'])
    assert tokens.shape == (2, 77) and tokens[0, 14] == rn_text.tokenizer.eot_token_id and not tokens[:, 15:].any()


def test_text_context_length_in_cache_key_and_checked(tmp_path):
    """The on-disk cache keys on the context length (a 77-token embedding of a long name is a different vector);
    an impossible length is an error."""
    torch.manual_seed(0)
    a = DeCLIPTextEncoder('RN50', tiny_resnet_overrides(), context_length=15, cache_dir=str(tmp_path))
    torch.manual_seed(0)
    b = DeCLIPTextEncoder('RN50', tiny_resnet_overrides(), cache_dir=str(tmp_path))
    ea, eb = a.embed_classes([LONG], IMAGENET_TEMPLATES[:4]), b.embed_classes([LONG], IMAGENET_TEMPLATES[:4])
    assert (ea - eb).abs().max() > 1e-4
    assert len(list(tmp_path.glob('*.pt'))) == 2
    with pytest.raises(ValueError, match='context_length=78'):
        DeCLIPTextEncoder('RN50', tiny_resnet_overrides(), context_length=78)


def test_gen_text_embeddings_tool_context_length(tmp_path):
    """``tools/gen_text_embeddings.py --context-length 15 --templates imagenet --no-this-is`` writes the RN-path
    vectors (names without "_" / upper case are used as they are)."""
    import json
    from .conftest import load_tool
    tool = load_tool('tools/gen_text_embeddings.py')
    args = ['--classes', f'object,{LONG}', '--model', 'RN50', '--model-overrides', json.dumps(tiny_resnet_overrides()),
            '--templates', 'imagenet',
            '--no-this-is', '--device', 'cpu', '--no-progress']
    short = tool.main(args + ['--out', str(tmp_path / 'a.pt'), '--context-length', '15'])
    full = tool.main(args + ['--out', str(tmp_path / 'b.pt')])
    torch.manual_seed(0)
    enc = DeCLIPTextEncoder('RN50', tiny_resnet_overrides(), context_length=15)
    ref = enc.embed_classes(['object', LONG], IMAGENET_TEMPLATES)
    torch.testing.assert_close(torch.stack([short['object'], short[LONG]]), ref, rtol=1e-5, atol=1e-6)
    assert (short[LONG] - full[LONG]).abs().max() > 1e-4
