"""ProxyCLIP set-up: the benchmark configs carry the original's protocol, MetaCLIP B/16 checkpoints load, the VFM
taps and ``tools/benchmark.py seg`` on a ProxyCLIP config.

* ``test_benchmark_configs_follow_the_original_protocol``: a wrong per-dataset value (short side, window, stride,
  ``prob_thd``, name file, dataset) or a protocol constant (pad 56, x40, beta / gamma, DINO ViT-B/8, the DINO-style
  pos-embed resize for OpenAI / MetaCLIP) in any of the 24 configs.
* ``test_metaclip_checkpoints_load``: GELU instead of QuickGELU for MetaCLIP, the MetaCLIP release wrapper
  (``state_dict`` + ``module.``) or the safetensors file not read, text tower not loaded.
* ``test_vfm_qkv_taps``: q / k / v taken from the wrong third of the qkv projection, the prefix tokens (CLS,
  registers) kept, q + k replaced by q or k.
"""
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from .conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))

ZS = osp.join(REPO, 'configs', 'zeroshot_seg')
# bench -> (dataset type, name file, short side, window, stride, prob_thd): PX configs/cfg_*.py
PROTOCOL = {
    'voc21': ('PascalVOCDataset', 'cls_voc21', 336, 336, 112, 0.2),
    'pc60': ('PascalContextDataset', 'cls_context60', 336, 336, 112, 0.15),
    'coco-object': ('COCOObjectDataset', 'cls_coco_object', 336, 336, 112, 0.25),
    'voc20': ('VOC20Dataset', 'cls_voc20', 336, 336, 112, 0.0),
    'pc59': ('PascalContextDataset59', 'cls_context59', 336, 336, 112, 0.0),
    'coco-stuff171': ('COCOStuffDataset', 'cls_coco_stuff', 336, 336, 112, 0.0),
    'cityscapes': ('CityscapesDataset', 'cls_city_scapes', 448, 224, 112, 0.0),
    'ade150': ('ADE20KDataset', 'cls_ade20k', 448, 336, 112, 0.0),
}
MODELS = {'vitb16': 'ViT-B-16', 'vitb16-metaclip': 'ViT-B-16-quickgelu', 'eva02-b16-declip': 'EVA02-B-16'}


@pytest.mark.parametrize('model', sorted(MODELS))
@pytest.mark.parametrize('bench', sorted(PROTOCOL))
def test_benchmark_configs_follow_the_original_protocol(model, bench):
    ds_type, names, side, crop, stride, thd = PROTOCOL[bench]
    path = osp.join(ZS, f'proxyclip_{model}_dino-b8_{bench}-{side}.py')
    cfg = Config.fromfile(path)
    m = cfg.model
    assert m.type == 'DeCLIPZeroShotSegmentor' and m.backbone.model_name == MODELS[model]
    assert m.text_encoder.model_name == MODELS[model]
    assert (m.class_names, m.prob_thd, m.logit_scale, m.background_index) == (names, thd, 40.0, 0)
    assert (m.slide_crop, m.slide_stride, m.pad_multiple) == (crop, stride, 56)
    assert m.get('templates') is None  # the 80 OpenAI ImageNet templates
    assert m.proxy.type == 'VFMProxyAttention' and m.proxy.vfm.name == 'dino_b8'
    assert (m.proxy.get('beta', 1.2), m.proxy.get('gamma', 3.0)) == (1.2, 3.0)
    assert m.proxy.vfm.checkpoint == 'checkpoints/dino_vitbase8_pretrain.pth'
    expect_pos = 'size' if model.startswith('eva') else 'dino_scale'
    assert m.backbone.get('pos_embed_resize', 'size') == expect_pos
    ds = cfg.test_dataloader.dataset
    assert ds.type == ds_type
    steps = [t.type for t in ds.pipeline]
    assert steps == ['LoadImageFromFile', 'Resize', 'LoadAnnotations', 'PackSegInputs']  # GT at its own size
    resize = ds.pipeline[1]
    assert tuple(resize.scale) == (2048, side) and resize.keep_ratio
    assert cfg.test_evaluator.type == 'IoUMetric'


def test_all_24_benchmark_configs_exist():
    import glob
    found = sorted(osp.basename(p) for p in glob.glob(osp.join(ZS, 'proxyclip_*_dino-b8_*.py')))
    assert len(found) == 24


def test_metaclip_checkpoints_load(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    from declip_mm.models.backbones import DeCLIPViT, build_clip_model
    from declip_mm.models.text import DeCLIPTextEncoder
    tiny = dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                vision_cfg=dict(width=64, layers=2, head_width=16))
    torch.manual_seed(0)
    ref = build_clip_model('ViT-B-16-quickgelu', tiny).eval()
    assert isinstance(ref.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    sd = ref.state_dict()
    # MetaCLIP's release .pt (open_clip's metaclip_* url): a training checkpoint wrapping a DDP state dict
    release = str(tmp_path / 'b16_fullcc2.5b.pt')
    torch.save({'epoch': 32, 'state_dict': {'module.' + k: v for k, v in sd.items()}}, release)
    # the hub copy (open_clip's metaclip_* hf_hub): a plain safetensors state dict
    hub = str(tmp_path / 'open_clip_model.safetensors')
    save_file({k: v.contiguous() for k, v in sd.items()}, hub)
    img = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want_img = ref.encode_image(img)
        want_txt = ref.encode_text(open_clip.get_tokenizer('ViT-B-16-quickgelu')(['a photo of a cat']))
    for path in (release, hub):
        bb = DeCLIPViT('ViT-B-16-quickgelu', model_overrides=tiny, checkpoint=path, out_types=('cls', ),
                       dense_mode='vanilla')
        assert isinstance(bb.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
        te = DeCLIPTextEncoder('ViT-B-16-quickgelu', model_overrides=tiny, checkpoint=path)
        with torch.no_grad():
            assert torch.allclose(bb.encode_image(img), want_img, atol=1e-5)
            got = te.clip.encode_text(te.tokenizer(['a photo of a cat']))
        assert torch.allclose(got, want_txt, atol=1e-5)


@pytest.mark.parametrize('name,kw,prefix', [
    ('dino_b8', dict(embed_dim=32, depth=2, num_heads=2, img_size=64), 1),
    ('dinov2_b', dict(embed_dim=32, depth=2, num_heads=2, img_size=56), 5)])
def test_vfm_qkv_taps(name, kw, prefix):
    from declip_mm.models.vfm import VFMTeacher
    torch.manual_seed(0)
    m = VFMTeacher(name, model_kwargs=kw)
    with torch.no_grad():
        for prm in m.model.parameters():
            prm.add_(0.05 * torch.randn_like(prm))
    p = m.patch_size
    x = torch.randn(2, 3, 4 * p, 3 * p)
    seen = {}
    blk = m.model.blocks[-1]
    h = blk.norm1.register_forward_hook(lambda mod, i, o: seen.__setitem__('y', o))
    with torch.no_grad():
        tokens = m(x)
    h.remove()
    y = seen['y']  # (B, T, C) input of the last block's qkv projection
    C = y.shape[-1]
    W, b = blk.attn.qkv.weight, blk.attn.qkv.bias
    q, k, v = (F.linear(y, W[i * C:(i + 1) * C], b[i * C:(i + 1) * C])[:, prefix:] for i in range(3))

    def as_map(t):
        return t.transpose(1, 2).reshape(2, C, 4, 3)
    with torch.no_grad():
        for tap, ref in (('q', q), ('k', k), ('v', v), ('qk', q + k)):
            assert torch.allclose(m(x, tap=tap), as_map(ref), atol=1e-5), tap
        assert torch.equal(m(x, tap='tokens'), tokens)
    with pytest.raises(ValueError, match='tap'):
        m(x, tap='kq')


def test_benchmark_seg_covers_proxyclip(tmp_path):
    import benchmark
    cfg = osp.join(ZS, 'proxyclip_tiny-eva02_tiny-dino-b8_ov-scenes-synthetic.py')
    res = benchmark.main(['seg', cfg, '--random-weights', '--size', '64', '80', '--batch', '2', '--iters', '1',
                          '--warmup', '0', '--device', 'cpu', '--peak-tflops', '1.0'])
    assert res['images_per_s'] > 0 and res['num_test_classes'] == 8 and res['flops_per_image'] > 0

