"""The OVDQUO detector wired with the ResNet CLIP path (tiny RN config): what feeds the transformer (C3, C4 and the
extra level conv3x3 s2 of the *raw* C4; C5 never), which map classifies proposals (C5, approximate attention pool)
and final boxes (C4 -> res5 -> attention pool), and the test scores.  References: plain torch in
``clip_rn_reference`` (torchvision RoIAlign) from the original's formulas, fed with the model's weights."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

from .clip_rn_reference import (approx_attnpool_rois, cell_rois, random_resnet_state, res5_attnpool_rois,
                                resnet_stages, valid_cells_nearest)
from .conftest import REPO

CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-r50-clip_1xb4-1e_ov-shapes-synthetic.py')


@pytest.fixture(scope='module')
def model():
    from mmdet.registry import MODELS
    import declip_mm  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(CFG)
    cfg.model.text_embeddings = None
    cfg.model.deform_attn_fp32 = False  # float64 run (the hook casts to float32)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='random unit vectors'):
        m = MODELS.build(cfg.model)
    m.init_weights()
    bb = m.backbone
    bb.load_state_dict(random_resnet_state(bb.state_dict(), seed=5))  # BN statistics and pe random too
    return m.double().eval()


def _batch(m):
    """Two images of different sizes in one padded batch (92 x 128 and 128 x 100 -> 128 x 128)."""
    from mmdet.structures import DetDataSample
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 128, 128, generator=g, dtype=torch.float64)
    shapes = [(92, 128), (128, 100)]
    samples = []
    for i, s in enumerate(shapes):
        x[i, :, s[0]:] = 0
        x[i, :, :, s[1]:] = 0
        samples.append(DetDataSample(metainfo=dict(img_shape=s, batch_input_shape=(128, 128), ori_shape=s,
                                                   scale_factor=(1., 1.))))
    return x, samples


def _sd(m):
    return {'visual.' + k: v for k, v in m.backbone.visual.state_dict().items()}


def test_transformer_gets_c3_c4_and_conv_of_raw_c4(model):
    """Levels: 1x1 + GN of C3 and C4, then conv3x3 s2 + GN of the raw C4 (original ov_dquo.py:215-221; the
    one-line bugs this catches: the extra conv fed with the projected C4 (outs[-1]) or with C5, or C5 given to the
    neck as a fourth input)."""
    x, _ = _batch(model)
    with torch.no_grad():
        feats, clip = model.extract_feat(x)
    _, c3, c4, c5 = resnet_stages(x, _sd(model))
    for a, b in zip(clip['maps'], (c3, c4, c5)):  # the region embedder sees C3, C4, C5
        torch.testing.assert_close(a, b)
    n = model.neck

    def conv_gn(x, cm, **kw):
        return F.group_norm(F.conv2d(x, cm.conv.weight, cm.conv.bias, **kw), 32, cm.gn.weight, cm.gn.bias)
    ref = [conv_gn(c3, n.convs[0]), conv_gn(c4, n.convs[1]), conv_gn(c4, n.extra_convs[0], stride=2, padding=1)]
    assert [f.shape[-1] for f in feats] == [16, 8, 4]  # strides 8 / 16 / 32
    assert len(feats) == 3
    for a, b in zip(feats, ref):
        torch.testing.assert_close(a, b)


def _cells(shapes, feat_hw):
    return [valid_cells_nearest(s, (128, 128), feat_hw) for s in shapes]


def _boxes():
    g = torch.Generator().manual_seed(2)
    cxcy = torch.rand(2, 5, 2, generator=g, dtype=torch.float64) * 0.8 + 0.1
    wh = torch.rand(2, 5, 2, generator=g, dtype=torch.float64) * 0.6 + 0.05
    b = torch.cat([cxcy, wh], -1)
    b[:, 0] = torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=torch.float64)  # the whole image
    return b


def test_proposals_on_c5_boxes_on_c4(model):
    """proposal_embeddings = the original's approximate attnpool on C5 (transformer text_query_assign ->
    sample_feature_rn(extra_conv=False)); box_embeddings = C4 -> RoIAlign 2g -> res5 -> attnpool
    (ov_dquo.py:352-360, extra_conv=True); boxes mapped with the valid cells of each map's downsampled mask.
    Swapping the two maps, or ignoring the padding, fails."""
    x, samples = _batch(model)
    shapes = [s.img_shape for s in samples]
    with torch.no_grad():
        _, clip = model.extract_feat(x)
        props = model.region_embedder.proposal_embeddings(clip, _boxes(), shapes, (128, 128))
        final = model.region_embedder.box_embeddings(clip, _boxes(), shapes, (128, 128))
    sd = _sd(model)
    _, _, c4, c5 = resnet_stages(x, sd)
    heads, g = model.backbone.attnpool.num_heads, model.backbone.grid_size

    def rois(feat):
        r = cell_rois(list(_boxes()), _cells(shapes, feat.shape[-2:]))
        return torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype), b], 1)
                          for i, b in enumerate(r)])
    ref_p = approx_attnpool_rois(c5, rois(c5), sd, heads, g).view(2, 5, -1)
    ref_b = res5_attnpool_rois(c4, rois(c4), sd, heads, g).view(2, 5, -1)
    torch.testing.assert_close(props, ref_p)
    torch.testing.assert_close(final, ref_b)
    assert (props - final).abs().max() > 1e-2  # two different CLIP paths


def test_scores_and_query_classes_use_the_rn_paths(model):
    """Test scores = softmax(100 [cos(C4 path of the final box, text), 0]) x sigmoid(objectness) and the query
    classes = arg-max of the C5 path of the top-k proposals (with the x3 novel boost), against the references."""
    x, samples = _batch(model)
    shapes = [s.img_shape for s in samples]
    sd = _sd(model)
    _, _, c4, c5 = resnet_stages(x, sd)
    heads, g = model.backbone.attnpool.num_heads, model.backbone.grid_size
    seen = {}
    orig = model.assign_text_queries

    def spy(proposals, clip_feats, vocab, batch_data_samples):
        out = orig(proposals, clip_feats, vocab, batch_data_samples)
        seen['proposals'], seen['classes'], seen['order'] = proposals, out[0], out[1]
        return out
    model.assign_text_queries = spy
    try:
        with torch.no_grad():
            scores, boxes = model._forward(x, samples)
    finally:
        del model.assign_text_queries

    def rois(b, feat):
        r = cell_rois(list(b), _cells(shapes, feat.shape[-2:]))
        return torch.cat([torch.cat([torch.full((len(t), 1), float(i), dtype=t.dtype), t], 1)
                          for i, t in enumerate(r)])
    text = model.text_embeddings.double()
    B, N = seen['proposals'].shape[:2]
    emb = approx_attnpool_rois(c5, rois(seen['proposals'], c5), sd, heads, g).view(B, N, -1)
    p = torch.cat([emb @ text.T, torch.full((B, N, 1), -1.0, dtype=emb.dtype)], -1).mul(100).softmax(-1)[..., :-1]
    p[..., model.novel_indices] *= 3.0  # the config's novel boost at test
    cls = p.max(-1)[1]
    torch.testing.assert_close(torch.gather(cls, 1, seen['order']), seen['classes'])
    femb = res5_attnpool_rois(c4, rois(boxes, c4), sd, heads, g).view(B, -1, emb.shape[-1])
    sm = torch.cat([femb @ text.T, torch.zeros(B, femb.shape[1], 1, dtype=femb.dtype)], -1).mul(100).softmax(-1)
    ratio = scores / sm[..., :-1]  # = sigmoid(objectness) of the query, the same for every class
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio))
    assert ((ratio > 0) & (ratio < 1)).all()


def test_free_text_recipe_is_the_rn_one(model):
    """OVDetInferencer encodes new classes with the detector's recipe: the RN configs' 80 ImageNet templates
    without the "This is" rule, 15-token context (as gen_text_embeddings.py --no-this-is --context-length 15 made
    the configs' file; the original's Classifier: templates formatted with the raw name,
    tokenize(context_length=15))."""
    from declip_mm.apis.det_inferencer import OVDetInferencer
    from declip_mm.models.text.templates import IMAGENET_TEMPLATES
    cfg = Config.fromfile(osp.join(REPO, 'configs/ovdquo/ovdquo_r50-clip_8xb4-30e_ov-coco.py')).model
    assert (cfg.text_templates, cfg.text_this_is, cfg.text_context_length) == ('imagenet', False, 15)
    saved = model.text_templates, model.text_this_is
    model.text_templates, model.text_this_is = cfg.text_templates, cfg.text_this_is
    try:
        templates, formatter, extra = model.text_prompts()
    finally:
        model.text_templates, model.text_this_is = saved
    assert list(templates) == list(IMAGENET_TEMPLATES) and extra == ['object']
    assert formatter('a photo of a {}.', 'traffic light') == 'a photo of a traffic light.'  # "This is" would prefix
    inf = OVDetInferencer.__new__(OVDetInferencer)
    inf._text_checkpoint, inf._text_seed = None, 0
    with pytest.warns(UserWarning, match='random text tower'):
        enc = inf._build_text_encoder(Config.fromfile(CFG).model.backbone, None, cfg.text_context_length)
    assert enc.context_length == 15 and enc.model_name == 'RN50'
