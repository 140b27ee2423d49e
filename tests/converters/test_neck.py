"""F-ViT's simple pyramid is mmseg's ``Feature2Pyramid(rescales=[4, 2, 1, 0.5])`` layer for layer."""
import torch

from .conftest import converter
from .reference import fvit_pyramid, randomize


def _clipself_pyramid_weights(c):
    """CLIPSelf ``EvaCLIPViT.interpolate1/2`` parameters (norm_cfg=SyncBN -> BN weights and statistics)."""
    layout = {'backbone.interpolate1.0.weight': (c, c, 2, 2), 'backbone.interpolate1.0.bias': (c, ),
              'backbone.interpolate1.3.weight': (c, c, 2, 2), 'backbone.interpolate1.3.bias': (c, ),
              'backbone.interpolate2.0.weight': (c, c, 2, 2), 'backbone.interpolate2.0.bias': (c, )}
    for n in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'):
        layout[f'backbone.interpolate1.1.{n}'] = () if n == 'num_batches_tracked' else (c, )
    p = randomize(layout, seed=3, scale=0.3)
    p['backbone.interpolate1.1.weight'] = 1 + p['backbone.interpolate1.1.weight']
    return p


def test_feature2pyramid_equals_fvit_pyramid():
    """Catches e.g. a GELU -> ReLU swap, upsample_4x/upsample_2x mapped to the wrong CLIPSelf branch, or the
    wrong pooling (stride) on the last level."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    c = 24
    p = _clipself_pyramid_weights(c)
    out, report = converter('clipself_fvit_to_declip_mm').convert(p)
    neck = MODELS.build(dict(type='Feature2Pyramid', embed_dim=c, rescales=[4, 2, 1, 0.5],
                             norm_cfg=dict(type='BN', requires_grad=True))).eval()
    neck.load_state_dict({k[len('neck.necks.0.'):]: v for k, v in out.items()}, strict=True)
    g = torch.Generator().manual_seed(0)
    taps = [torch.randn(2, c, 6, 5, generator=g) for _ in range(4)]
    with torch.no_grad():
        ours = neck(taps)
    ref = fvit_pyramid(p, taps)
    assert [tuple(o.shape) for o in ours] == [(2, c, 24, 20), (2, c, 12, 10), (2, c, 6, 5), (2, c, 3, 2)]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_fvit_configs_use_mmseg_feature2pyramid():
    """Every F-ViT config builds the library's pyramid (the hand-written one is gone)."""
    import glob
    import os.path as osp
    from mmengine.config import Config
    from .conftest import REPO
    for path in sorted(glob.glob(osp.join(REPO, 'configs/fvit/*.py'))):
        neck = Config.fromfile(path).model.neck
        assert neck.type == 'SequentialNeck', path
        pyr = neck.necks[0]
        assert pyr.type == 'mmseg.Feature2Pyramid' and list(pyr.rescales) == [4, 2, 1, 0.5], path
