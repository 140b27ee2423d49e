"""OV-DQUO under bf16 autocast (the configs' AmpOptimWrapper), on CPU: training and test steps run (mmcv's RoIAlign
and deformable-attention kernels have no bf16 version, so the CLIP map, region pooling, heads, matching, losses and
scores are float32), and the outputs stay close to the fp32 ones."""
import copy
import os.path as osp

import pytest
import torch

from .conftest import REPO

CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')


def _build(**over):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import declip_mm  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(CFG)
    cfg.model.text_embeddings = None
    cfg.model.update(over)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='random unit vectors'):
        m = MODELS.build(cfg.model)
    m.init_weights()
    return cfg, m


@pytest.fixture(scope='module')
def setup(synthetic_det):
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    cfg, model = _build()
    d = copy.deepcopy(cfg.train_dataloader.dataset)
    d.data_root = synthetic_det['root'] + '/'
    ds = DATASETS.build(d)
    data = model.data_preprocessor(pseudo_collate([ds[i] for i in range(2)]), True)
    assert sum(int(s.gt_instances.pseudo.sum()) for s in data['data_samples']) > 0
    return model, data


def test_bf16_training_step(setup):
    model, data = setup
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        _, clip = model.extract_feat(data['inputs'])
        losses = model.loss(data['inputs'], copy.deepcopy(data['data_samples']))
    assert clip['dense'].dtype == torch.float32  # the CLIP map for RoIAlign
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()
    grad = model.text_proj.layers[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    model.zero_grad()
    fp32 = model.loss(data['inputs'], copy.deepcopy(data['data_samples']))
    # the same matching targets: the encoder's box losses (plain matching on all boxes) agree closely
    assert losses['enc_loss_bbox'].item() == pytest.approx(fp32['enc_loss_bbox'].item(), rel=0.1)


def test_bf16_test_step(setup):
    """Runs, with float32 scores and boxes; the features feeding it stay close to fp32 (random weights leave the
    objectness logits nearly tied, so the top-k order itself is not comparable)."""
    import torch.nn.functional as F
    model, data = setup
    model.eval()
    samples = data['data_samples']
    with torch.no_grad():
        ref_feats, ref_clip = model.extract_feat(data['inputs'])
        with torch.autocast('cpu', dtype=torch.bfloat16):
            feats, clip = model.extract_feat(data['inputs'])
            scores, boxes = model._forward(data['inputs'], samples)
            preds = model.predict(data['inputs'], copy.deepcopy(samples))
    assert scores.dtype == boxes.dtype == torch.float32 and torch.isfinite(scores).all()
    assert preds[0].pred_instances.scores.dtype == torch.float32
    cos = F.cosine_similarity(clip['dense'], ref_clip['dense'], dim=1)
    assert cos.min() > 0.99
    for a, b in zip(feats, ref_feats):
        assert (a.float() - b).norm() / b.norm() < 0.05


def test_deformable_value_projection_is_float32_under_autocast():
    from mmcv.ops import MultiScaleDeformableAttention
    x = torch.randn(1, 5, 256)
    for flag, want in ((True, torch.float32), (False, torch.bfloat16)):
        _, m = _build(deform_attn_fp32=flag)
        msda = [a for a in m.modules() if isinstance(a, MultiScaleDeformableAttention)]
        assert len(msda) == 4  # 2 encoder + 2 decoder layers
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert all(a.value_proj(x).dtype == want for a in msda)
            assert msda[0].output_proj(x).dtype == torch.bfloat16  # the other projections stay in bf16


def test_bf16_resnet_path(synthetic_det):
    """The tiny RN config under bf16 autocast: a training step (float32 losses, gradients, the encoder's box loss
    close to fp32's) and a test step (float32 scores; the C5 / C4 region embeddings, computed in float32 from the
    bf16 maps, close to fp32's)."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, MODELS, init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-r50-clip_1xb4-1e_ov-shapes-synthetic.py'))
    cfg.model.text_embeddings = None
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='random unit vectors'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    d = copy.deepcopy(cfg.train_dataloader.dataset)
    d.data_root = synthetic_det['root'] + '/'
    ds = DATASETS.build(d)
    data = model.data_preprocessor(pseudo_collate([ds[i] for i in range(2)]), True)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(data['inputs'], copy.deepcopy(data['data_samples']))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.text_proj.layers[0].weight.grad is not None
    model.zero_grad()
    fp32 = model.loss(data['inputs'], copy.deepcopy(data['data_samples']))
    assert losses['enc_loss_bbox'].item() == pytest.approx(fp32['enc_loss_bbox'].item(), rel=0.1)
    model.eval()
    samples = data['data_samples']
    boxes = torch.tensor([[[0.5, 0.5, 1.0, 1.0], [0.4, 0.6, 0.3, 0.5]]] * 2)
    shapes, pad = [s.img_shape for s in samples], samples[0].batch_input_shape
    with torch.no_grad():
        _, ref = model.extract_feat(data['inputs'])
        ref_p = model.region_embedder.proposal_embeddings(ref, boxes, shapes, pad)
        ref_b = model.region_embedder.box_embeddings(ref, boxes, shapes, pad)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            _, clip = model.extract_feat(data['inputs'])
            p = model.region_embedder.proposal_embeddings(clip, boxes, shapes, pad)
            b = model.region_embedder.box_embeddings(clip, boxes, shapes, pad)
            scores, out_boxes = model._forward(data['inputs'], samples)
    assert scores.dtype == out_boxes.dtype == p.dtype == b.dtype == torch.float32
    assert (p * ref_p).sum(-1).min() > 0.98 and (b * ref_b).sum(-1).min() > 0.98
