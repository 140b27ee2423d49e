"""Users swap DeCLIPViT into an existing mmdet / mmseg config: one training step and one predict on CPU."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from declip_mm.models.backbones import tiny_clip_overrides


def _stock_config(package, rel):
    """A config file shipped inside the installed mmdet / mmseg package."""
    mod = __import__(package)
    path = os.path.join(os.path.dirname(mod.__file__), '.mim', 'configs', rel)
    assert os.path.isfile(path), f'stock config missing from the installed {package}: {path}'
    return Config.fromfile(path)


def _train_and_predict(model, data):
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = OptimWrapper(torch.optim.SGD(params, lr=0.01))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    losses = model.train_step(data, optim)
    assert all(torch.isfinite(v).all() for v in losses.values())
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(before[n], p)]
    assert changed, 'the optimizer step changed nothing'
    model.eval()
    with torch.no_grad():
        return model.test_step(data), losses, changed


def test_mmdet_faster_rcnn_with_declip_backbone():
    """configs/fvit/faster-rcnn_declipvit-b16_simple-pyramid_fpn_1x_coco.py: the installed mmdet's own
    faster-rcnn_r50_fpn_1x_coco.py (``mmdet::`` base) with the ResNet swapped for DeCLIPViT + simple pyramid."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData
    register_all_modules()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = Config.fromfile(os.path.join(repo, 'configs/fvit/faster-rcnn_declipvit-b16_simple-pyramid_fpn_1x_coco.py'))
    assert cfg.model.type == 'FasterRCNN' and cfg.model.roi_head.type == 'StandardRoIHead'  # stock mmdet parts
    cfg.model.backbone.update(checkpoint=None, model_overrides=tiny_clip_overrides('eva'), out_indices=(0, 1, 2, 3))
    cfg.model.neck.necks[0].update(embed_dim=64, norm_cfg=dict(type='BN'))
    cfg.model.neck.necks[1].update(in_channels=[64] * 4)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'DeCLIPViT'
    imgs, samples = [], []
    for i in range(2):
        imgs.append(torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8))
        s = DetDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128), scale_factor=(1., 1.),
                                        pad_shape=(96, 128), batch_input_shape=(96, 128)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 60., 70.], [50., 20., 120., 90.]]),
                                      labels=torch.tensor([1, 7]))
        samples.append(s)
    preds, losses, changed = _train_and_predict(model, dict(inputs=imgs, data_samples=samples))
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox'} <= set(losses)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(n.startswith('backbone.') for n in changed)  # the frozen CLIP did not move
    assert any(n.startswith('neck.necks.0.') for n in changed)  # the pyramid trains
    assert len(preds) == 2 and preds[0].pred_instances.bboxes.shape[1] == 4


def test_mmseg_encoder_decoder_with_declip_backbone():
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = _stock_config('mmseg', '_base_/models/fcn_r50-d8.py')
    with pytest.raises(ValueError, match='model.pretrained=None'):  # the stock ResNet weights are refused clearly
        from declip_mm import DeCLIPViT
        DeCLIPViT('ViT-B-16', model_overrides=tiny_clip_overrides('openai'), pretrained=cfg.model.pretrained)
    cfg.model.pretrained = None
    cfg.model.backbone = dict(type='DeCLIPViT', model_name='ViT-B-16', model_overrides=tiny_clip_overrides('openai'),
                              out_indices=(1, 3), out_types=('feats', 'dense'), dense_mode='csa', trainable=1)
    cfg.model.decode_head.update(in_channels=32, in_index=2, channels=16, num_convs=1, concat_input=False,
                                 num_classes=5, norm_cfg=dict(type='BN'))
    cfg.model.auxiliary_head.update(in_channels=64, in_index=1, channels=16, num_classes=5,
                                    norm_cfg=dict(type='BN'))
    cfg.model.data_preprocessor.update(size=(64, 96), mean=[122.77, 116.75, 104.09], std=[68.5, 66.63, 70.32])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    imgs, samples = [], []
    for i in range(2):
        imgs.append(torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), pad_shape=(64, 96)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 64, 96)))
        samples.append(s)
    preds, losses, changed = _train_and_predict(model, dict(inputs=imgs, data_samples=samples))
    assert 'decode.loss_ce' in losses and 'aux.loss_ce' in losses
    assert any(n.startswith('backbone.visual.transformer.resblocks.3.') for n in changed)
    assert not any(n.startswith('backbone.visual.transformer.resblocks.0.') for n in changed)
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 96)


# ------------------------------------------------------------------ the README's example, exactly as printed
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _readme_config(marker, tmp_path):
    """The README's python block whose ``_base_`` starts with ``marker``, written to a config file and loaded."""
    import re
    text = open(os.path.join(REPO, 'README.md')).read()
    section = text.split('## The DeCLIP backbone in your own config', 1)[1].split('\n## ', 1)[0]
    blocks = [b for b in re.findall(r'```python\n(.*?)```', section, re.S) if f"_base_ = '{marker}" in b]
    assert len(blocks) == 1, f'README: one {marker} example expected in the backbone section'
    path = tmp_path / f'{marker[:-2]}_swap.py'
    path.write_text(blocks[0])
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.type == 'DeCLIPViT' and 'depth' not in cfg.model.backbone  # _delete_ dropped ResNet's
    # as printed, except that no CLIP file exists here: random full-size weights instead
    assert cfg.model.backbone.checkpoint.startswith('checkpoints/')
    cfg.model.backbone.checkpoint = None
    return cfg


def test_readme_example_in_stock_mmdet_faster_rcnn(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.model import revert_sync_batchnorm
    from mmengine.structures import InstanceData
    register_all_modules()
    cfg = _readme_config('mmdet::', tmp_path)
    assert cfg.model.type == 'FasterRCNN' and cfg.model.rpn_head.type == 'RPNHead'  # the stock detector
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))  # as mmengine's Runner does without DDP
    model.init_weights()
    imgs, samples = [], []
    for _ in range(2):
        imgs.append(torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8))
        s = DetDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128), scale_factor=(1., 1.),
                                        pad_shape=(96, 128), batch_input_shape=(96, 128)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 60., 70.]]), labels=torch.tensor([3]))
        samples.append(s)
    preds, losses, changed = _train_and_predict(model, dict(inputs=imgs, data_samples=samples))
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox'} <= set(losses)
    assert not any(n.startswith('backbone.') for n in changed) and any(n.startswith('neck.') for n in changed)
    assert preds[0].pred_instances.bboxes.shape[1] == 4


def test_readme_example_in_stock_mmseg_upernet(tmp_path):
    from mmengine.model import revert_sync_batchnorm
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = _readme_config('mmseg::', tmp_path)
    assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.auxiliary_head.type == 'FCNHead'
    cfg.model.data_preprocessor.size = (64, 96)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    imgs, samples = [], []
    for _ in range(2):
        imgs.append(torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), pad_shape=(64, 96)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, 64, 96)))
        samples.append(s)
    preds, losses, changed = _train_and_predict(model, dict(inputs=imgs, data_samples=samples))
    assert 'decode.loss_ce' in losses and 'aux.loss_ce' in losses
    assert not any(n.startswith('backbone.') for n in changed) and any(n.startswith('neck.') for n in changed)
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 96)
