"""OVDetInferencer and tools/infer.py det with an OV-DQUO config: the vocabulary comes from the detector's own
interface (prompt recipe, wildcard row, novel classes), results equal an OVDQUO built independently for the same
classes, the wildcard name is refused as a class, and the CLI writes pictures and predictions."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .conftest import REPO, build, load_cfg, load_tool
from .test_inferencers import _hand_vild

OVDQUO_CFG = osp.join(REPO, 'configs', 'ovdquo', 'ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')


@pytest.fixture(scope='module')
def ovdquo_ckpt(tmp_path_factory):
    """A randomly initialised tiny OVDQUO whose objectness prior is 0.5 (so that boxes pass the 0.001 threshold)."""
    torch.manual_seed(3)
    cfg = load_cfg(OVDQUO_CFG)
    cfg.model.text_embeddings = None
    with pytest.warns(UserWarning, match='random unit vectors'):
        model = build(cfg.model, 'mmdet')
    model.init_weights()
    with torch.no_grad():
        for m in set(model.bbox_head.cls_branches):
            m.bias.zero_()
    path = str(tmp_path_factory.mktemp('ovdquo_ckpt') / 'ovdquo_tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def test_ovdquo_free_vocabulary(ovdquo_ckpt, photo, tmp_path):
    """The user's texts with the ViLD recipe (synonyms averaged) and the wildcard 'object' with the same recipe;
    classes not in base_texts are novel; detections equal an OVDQUO constructed for exactly these classes."""
    from mmengine.dataset import Compose, pseudo_collate
    from declip_mm.apis import OVDetInferencer
    inf = OVDetInferencer(OVDQUO_CFG, ovdquo_ckpt, device='cpu', cache_dir='', show_progress=False)
    res = inf(photo, texts='cat, dog; puppy', base_texts='cat', pred_score_thr=0.0, out_dir=str(tmp_path / 'out'))
    m, enc = inf.model, inf.text_encoder
    cat, dog, puppy, obj = (_hand_vild(enc, n) for n in ('cat', 'dog', 'puppy', 'object'))
    expect = torch.stack([cat, F.normalize(dog + puppy, dim=0)])
    assert (m.text_embeddings - expect).abs().max() < 1e-5
    assert (m.wildcard_embedding - obj).abs().max() < 1e-5
    assert m.class_names == ['cat', 'dog'] and m.novel_classes == ['dog'] and m.novel_indices == [1]
    assert res['classes'] == ['cat', 'dog']
    # an OVDQUO built for these classes from the config (its label table is sized by the training vocabulary and
    # unused at test: the only weight not taken from the checkpoint)
    cfg = load_cfg(OVDQUO_CFG)
    cfg.model.update(class_names=['cat', 'dog'], novel_classes=['dog'],
                     text_embeddings=dict(cat=expect[0], dog=expect[1], object=obj, background=obj))
    ref = build(cfg.model, 'mmdet')
    sd = torch.load(ovdquo_ckpt, weights_only=True)['state_dict']
    missing, unexpected = ref.load_state_dict(
        {k: v for k, v in sd.items() if k != 'dn_query_generator.label_embedding.weight'}, strict=False)
    assert missing == ['dn_query_generator.label_embedding.weight'] and not unexpected
    ref.eval()
    pipe = Compose([t for t in cfg.test_dataloader.dataset.pipeline if t['type'] != 'LoadAnnotations'])
    with torch.no_grad():
        r = ref.test_step(pseudo_collate([pipe(dict(img_path=photo, img_id=0))]))[0]
    h, w = r.metainfo['ori_shape'][:2]
    boxes = r.pred_instances.bboxes.numpy().copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)  # the inferencer clips boxes to the image
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    got = res['predictions'][0]
    assert len(got['scores']) == len(r.pred_instances.scores) > 0
    assert np.allclose(got['scores'], r.pred_instances.scores.numpy(), atol=1e-5)
    assert np.allclose(got['bboxes'], boxes, atol=1e-3)
    assert got['labels'] == r.pred_instances.labels.tolist()
    assert got['label_names'] == [['cat', 'dog'][i] for i in got['labels']]
    import mmcv
    pic = mmcv.imread(str(tmp_path / 'out' / 'vis' / 'grace_hopper.jpg'))
    assert pic.shape == mmcv.imread(photo).shape


def test_ovdquo_vocabulary_rules(ovdquo_ckpt, photo):
    from declip_mm.apis import OVDetInferencer
    cfg = load_cfg(OVDQUO_CFG)
    with pytest.raises(ValueError, match='"object" is reserved'):
        OVDetInferencer.check_vocabulary(cfg, 'cat, Object')
    assert OVDetInferencer.config_vocabulary(cfg).names == list(cfg.model.class_names)
    inf = OVDetInferencer(OVDQUO_CFG, ovdquo_ckpt, device='cpu', cache_dir='', show_progress=False)
    with pytest.raises(ValueError, match='reserved'):
        inf(photo, texts='cat, object')
    inf(photo, texts='cat, dog')  # no base texts: every class novel, so the boost changes no query class
    assert inf.model.novel_indices == [0, 1]
    with pytest.raises(ValueError, match='wildcard'):
        inf.model.set_vocabulary(['cat', 'object'], torch.randn(2, inf.model.text_embeddings.shape[1]))


def test_infer_cli_det_with_ovdquo(ovdquo_ckpt, photo, tmp_path):
    out_dir = str(tmp_path / 'out')
    out = load_tool('tools/infer.py').main(['det', OVDQUO_CFG, photo, '--weights', ovdquo_ckpt, '--texts',
                                            'person, necktie, flag', '--out-dir', out_dir, '--device', 'cpu',
                                            '--cache-dir', '', '--pred-score-thr', '0.0'])
    pred = out['predictions'][0]
    assert out['classes'] == ['person', 'necktie', 'flag'] and len(pred['scores']) > 0
    assert set(pred['label_names']) <= {'person', 'necktie', 'flag'}
    with open(osp.join(out_dir, 'predictions.json'), encoding='utf-8') as f:
        saved = json.load(f)
    assert saved['complete'] and saved['predictions'][0]['scores'] == pred['scores']
    assert osp.isfile(osp.join(out_dir, 'vis', 'grace_hopper.jpg'))
    assert osp.isfile(osp.join(out_dir, 'preds', 'grace_hopper.json'))


def test_ovdquo_without_checkpoint_is_initialised(photo):
    """No weights: the detector is initialised as for training (DINO's level embeddings and deformable attention
    are empty tensors until init_weights), so a random-weight run gives finite boxes."""
    from declip_mm.apis import OVDetInferencer
    with pytest.warns(UserWarning, match='random weights'):
        inf = OVDetInferencer(OVDQUO_CFG, None, device='cpu', cache_dir='', show_progress=False)
    assert 0.5 < float(inf.model.level_embed.std()) < 1.5  # normal init
    res = inf(photo, texts='cat, dog', pred_score_thr=0.0)
    assert np.isfinite(np.asarray(res['predictions'][0]['bboxes'], dtype=float)).all()
