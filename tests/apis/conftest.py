"""Shared pieces of the inference tests: tiny configs, a real photo, checkpoints of tiny random models."""
import copy
import importlib.util
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CFG = osp.join(REPO, 'configs', 'fvit', 'fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
CATSEG_CFG = osp.join(REPO, 'configs', 'catseg', 'catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py')
ZS_CFG = osp.join(REPO, 'configs', 'zeroshot_seg', 'trainingfree_tiny-eva02_ov-scenes-synthetic.py')
DET_CLASSES = ['circle', 'square', 'triangle', 'cross', 'ring', 'diamond']
DET_NOVEL = ['triangle', 'ring']


@pytest.fixture(scope='module', autouse=True)
def _restore_default_scope():
    """Inferencers set mmengine's global default scope (mmdet / mmseg); tests of other folders must not inherit the
    last one a module here left behind."""
    from mmengine.registry import DefaultScope
    before = set(DefaultScope._instance_dict)
    yield
    for name in [n for n in DefaultScope._instance_dict if n not in before]:
        DefaultScope._instance_dict.pop(name)


def load_tool(rel_path: str):
    path = osp.join(REPO, rel_path)
    spec = importlib.util.spec_from_file_location('tool_' + osp.splitext(osp.basename(path))[0], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def photo_path():
    import matplotlib
    return osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')


@pytest.fixture(scope='session')
def photo():
    return photo_path()


@pytest.fixture(scope='session')
def photo_dir(tmp_path_factory):
    """Two small real photos (crops of grace_hopper.jpg) and one broken .jpg."""
    import mmcv
    d = tmp_path_factory.mktemp('photos')
    img = mmcv.imread(photo_path())
    mmcv.imwrite(img[:300, :250], str(d / 'a.jpg'))
    mmcv.imwrite(img[200:, 150:], str(d / 'c.png'))
    (d / 'b_broken.jpg').write_bytes(b'not an image at all')
    return str(d)


def load_cfg(path, **opts):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if opts:
        cfg.merge_from_dict(opts)
    return cfg


def build(cfg_model, scope):
    import declip_mm  # noqa: F401
    from mmengine.registry import DefaultScope
    from declip_mm.registry import DET_MODELS, SEG_MODELS
    reg = DET_MODELS if scope == 'mmdet' else SEG_MODELS
    with DefaultScope.overwrite_default_scope(scope):  # not left behind for other tests
        return reg.build(copy.deepcopy(cfg_model))


def seg_forward(model, cfg, img_path):
    """One image through the config's test pipeline (annotations dropped) and ``model.test_step``."""
    from mmengine.dataset import Compose, pseudo_collate
    pipe = Compose([t for t in cfg.test_dataloader.dataset.pipeline if 'Annotation' not in t['type']])
    with torch.no_grad():
        return model.test_step(pseudo_collate([pipe(dict(img_path=img_path))]))[0]



def free_vocabulary_equals_config_model(inf, cfg_path, photo, out_dir):
    """``inf`` (an OVSegInferencer of ``cfg_path``) on ``photo`` with a free vocabulary (synonyms included) gives
    the label map of the config's own model built with that vocabulary and ``inf``'s weights, with two or more
    labels; returns that reference model (logits saved), its config and its data sample."""
    import numpy as np
    res = inf(photo, texts=[['person', 'man'], 'wall', 'flag'], out_dir=str(out_dir))
    cfg = load_cfg(cfg_path)
    cfg.model.class_names = [['person', 'man'], ['wall'], ['flag']]
    ref = build(cfg.model, 'mmseg')
    ref.load_state_dict(inf.model.state_dict())  # the same random tiny CLIP and VFM
    ref.eval()
    ref.save_seg_logits = True
    ref_sample = seg_forward(ref, cfg, photo)
    expect = ref_sample.pred_sem_seg.data[0].numpy()
    got = res['predictions'][0]['sem_seg']
    assert np.array_equal(got, expect) and len(np.unique(expect)) > 1
    assert res['classes'] == ['person', 'wall', 'flag']
    return ref, cfg, ref_sample

@pytest.fixture(scope='session')
def det_text_file(tmp_path_factory):
    """The synthetic classes' embeddings from tools/gen_text_embeddings.py (tiny EVA text tower, seed 0)."""
    out = str(tmp_path_factory.mktemp('det_text') / 'text_tiny_eva.pt')
    load_tool('tools/gen_text_embeddings.py').main(['--classes', ','.join(DET_CLASSES), '--out', out, '--tiny', 'eva',
                                                    '--seed', '0', '--device', 'cpu', '--no-progress'])
    return out


@pytest.fixture(scope='session')
def det_ckpt(tmp_path_factory, det_text_file):
    """A checkpoint of a randomly initialised tiny F-ViT (its heads perturbed so predictions are not degenerate)."""
    torch.manual_seed(1)
    cfg = load_cfg(DET_CFG)
    cfg.model.roi_head.bbox_head.text_embeddings = det_text_file
    model = build(cfg.model, 'mmdet')
    model.init_weights()
    path = str(tmp_path_factory.mktemp('det_ckpt') / 'fvit_tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.fixture(scope='session')
def catseg_ckpt(tmp_path_factory):
    torch.manual_seed(2)
    model = build(load_cfg(CATSEG_CFG).model, 'mmseg')
    model.init_weights()
    path = str(tmp_path_factory.mktemp('catseg_ckpt') / 'catseg_tiny.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path
