"""OVDetInferencer / OVSegInferencer: results checked against the models' own forward, built independently from
the config with the vocabulary given to the constructor (not through the inferencer's vocabulary switch)."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .conftest import CATSEG_CFG, DET_CFG, DET_CLASSES, DET_NOVEL, ZS_CFG, build, load_cfg


def _det_forward(model, cfg, img_path):
    """The config's test pipeline (minus annotations) + model.test_step, as tools/test.py would run it."""
    from mmengine.dataset import Compose, pseudo_collate
    pipe = Compose([t for t in cfg.test_dataloader.dataset.pipeline if t['type'] != 'LoadAnnotations'])
    with torch.no_grad():
        return model.test_step(pseudo_collate([pipe(dict(img_path=img_path, img_id=0))]))[0]


def _seg_forward(model, cfg, img_path):
    from mmengine.dataset import Compose, pseudo_collate
    pipe = Compose([t for t in cfg.test_dataloader.dataset.pipeline if 'Annotation' not in t['type']])
    with torch.no_grad():
        return model.test_step(pseudo_collate([pipe(dict(img_path=img_path))]))[0]


def _hand_vild(enc, name):
    """ViLD recipe written out: 63 templates, article, "This is " rule, per-sentence norm, mean, norm."""
    from declip_mm.models.text.templates import VILD_TEMPLATES
    art = 'an' if name[0] in 'aeiou' else 'a'
    sents = [t.format(name, article=art) for t in VILD_TEMPLATES]
    sents = ['This is ' + s if s.startswith('a') or s.startswith('the') else s for s in sents]
    with torch.no_grad():
        x = F.normalize(enc.clip.encode_text(enc.tokenizer(sents)), dim=-1)
    return F.normalize(x.mean(0), dim=0)


def _same_dets(res_dict, ref_sample, names):
    inst = ref_sample.pred_instances
    h, w = ref_sample.metainfo['ori_shape'][:2]
    boxes = inst.bboxes.numpy().copy()
    assert boxes[:, 2].max() <= w and boxes[:, 3].max() <= h  # the model clips to the image, not the padding
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)  # the inferencer clips them to the image
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    assert len(res_dict['scores']) == len(inst.scores) > 0
    assert np.allclose(res_dict['bboxes'], boxes, atol=1e-3)
    assert np.allclose(res_dict['scores'], inst.scores.numpy(), atol=1e-5)
    assert res_dict['labels'] == inst.labels.tolist() and all(isinstance(i, int) for i in res_dict['labels'])
    assert res_dict['label_names'] == [names[i] for i in inst.labels.tolist()]


def test_det_config_vocabulary_equals_config_model(det_ckpt, det_text_file, photo):
    """On-the-fly ViLD embeddings + base/novel split == the config's model with the embedding file and its
    zero-weight novel classes (catches: wrong templates / "This is" rule, background row, alpha/beta swapped)."""
    from declip_mm.apis import OVDetInferencer
    inf = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir='', show_progress=False)
    base = [c for c in DET_CLASSES if c not in DET_NOVEL]
    res = inf(photo, texts=DET_CLASSES, base_texts=base, pred_score_thr=0.0)
    cfg = load_cfg(DET_CFG)
    cfg.model.roi_head.bbox_head.text_embeddings = det_text_file
    ref = build(cfg.model, 'mmdet')
    ref.load_state_dict(torch.load(det_ckpt)['state_dict'])
    ref.eval()
    _same_dets(res['predictions'][0], _det_forward(ref, cfg, photo), DET_CLASSES)
    assert res['classes'] == DET_CLASSES and res['skipped'] == []


def test_det_free_vocabulary(det_ckpt, photo, tmp_path):
    """New words: embeddings equal the hand-written recipe (synonyms averaged), every class novel, and the
    detections equal an F-ViT built for exactly these classes."""
    from declip_mm.apis import OVDetInferencer
    inf = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir=str(tmp_path / 'c'), show_progress=False)
    res = inf(photo, texts='cat, dog; puppy', pred_score_thr=0.0, out_dir=str(tmp_path / 'out'))
    head = inf.model.roi_head.bbox_head
    enc = inf.text_encoder
    cat, dog, puppy, bg = (_hand_vild(enc, n) for n in ('cat', 'dog', 'puppy', 'background'))
    expect = torch.stack([cat, F.normalize(dog + puppy, dim=0), bg])
    assert (head.fc_cls.text_embeddings - expect).abs().max() < 1e-5
    assert head.ensemble_exponent.tolist() == pytest.approx([head.beta, head.beta, head.alpha])
    cfg = load_cfg(DET_CFG)
    bh = cfg.model.roi_head.bbox_head
    bh.update(num_classes=2, class_names=['cat', 'dog'], novel_classes=[0, 1],
              text_embeddings=dict(cat=expect[0], dog=expect[1], background=expect[2]))
    bh.loss_cls.class_weight = [1.0, 1.0]
    ref = build(cfg.model, 'mmdet')
    ref.load_state_dict(torch.load(det_ckpt)['state_dict'])
    ref.eval()
    _same_dets(res['predictions'][0], _det_forward(ref, cfg, photo), ['cat', 'dog'])
    assert set(res['predictions'][0]['label_names']) <= {'cat', 'dog'}
    # the picture: the photo with boxes drawn, through DetLocalVisualizer
    import mmcv
    pic = mmcv.imread(str(tmp_path / 'out' / 'vis' / 'grace_hopper.jpg'))
    raw = mmcv.imread(photo)
    assert pic.shape == raw.shape and np.abs(pic.astype(int) - raw).mean() > 1
    # second call with the same words: no text-tower work (memory), and a new inferencer reads the disk cache
    calls = []
    orig = enc.clip.encode_text
    enc.clip.encode_text = lambda *a, **k: calls.append(1) or orig(*a, **k)
    inf(photo, texts='cat, dog; puppy')
    assert not calls and inf.timings['text_s'] < 0.05
    inf2 = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir=str(tmp_path / 'c'), show_progress=False)
    orig2 = inf2.text_encoder.clip.encode_text
    inf2.text_encoder.clip.encode_text = lambda *a, **k: calls.append(1) or orig2(*a, **k)
    res2 = inf2(photo, texts='cat, dog; puppy', pred_score_thr=0.0)
    assert not calls and res2['predictions'][0]['scores'] == res['predictions'][0]['scores']


def test_det_bad_input(det_ckpt, catseg_ckpt, photo_dir, tmp_path):
    from declip_mm.apis import OVDetInferencer
    inf = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir='', show_progress=False)
    for empty in ('', ' , ;', []):
        with pytest.raises(ValueError, match='empty vocabulary'):
            inf(photo_dir, texts=empty)
    with pytest.raises(ValueError, match='reserved'):
        inf(photo_dir, texts='cat, background')
    with pytest.raises(ValueError, match='base texts not in the vocabulary'):
        inf(photo_dir, texts='cat', base_texts='dog')
    with pytest.warns(UserWarning, match='b_broken.jpg'):
        res = inf(photo_dir, texts='cat, dog')
    assert [osp.basename(p['input']) for p in res['predictions']] == ['a.jpg', 'c.png']
    assert len(res['skipped']) == 1 and res['skipped'][0]['input'].endswith('b_broken.jpg')
    with pytest.raises(ValueError, match='does not fit'):
        OVDetInferencer(DET_CFG, catseg_ckpt, device='cpu', cache_dir='')
    sd = torch.load(det_ckpt)['state_dict']
    k = next(k for k in sd if k.endswith('fc_reg.weight'))
    sd[k] = sd[k][:, :5]
    bad = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict=sd), bad)
    with pytest.raises(ValueError, match='1 shape mismatch'):
        OVDetInferencer(DET_CFG, bad, device='cpu', cache_dir='')
    with pytest.raises(ValueError, match='F-ViT'):
        OVDetInferencer(CATSEG_CFG, None, device='cpu', cache_dir='')


def test_catseg_free_vocabulary(catseg_ckpt, photo, tmp_path):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(CATSEG_CFG, catseg_ckpt, device='cpu', cache_dir='', show_progress=False)
    texts = 'person, wall; brick wall, flag'
    res = inf(photo, texts=texts, out_dir=str(tmp_path))
    cfg = load_cfg(CATSEG_CFG)
    cfg.model.test_class_names = ['person', 'wall', 'flag']
    ref = build(cfg.model, 'mmseg')
    ref.load_state_dict(torch.load(catseg_ckpt)['state_dict'])
    ref.eval()
    expect = _seg_forward(ref, cfg, photo).pred_sem_seg.data[0].numpy()
    got = res['predictions'][0]
    import mmcv
    assert got['sem_seg'].shape == mmcv.imread(photo).shape[:2]
    assert np.array_equal(got['sem_seg'], expect)
    ids, counts = np.unique(expect, return_counts=True)
    assert got['present'] == pytest.approx({['person', 'wall', 'flag'][i]: c / expect.size
                                            for i, c in zip(ids, counts)})
    pic = mmcv.imread(str(tmp_path / 'vis' / 'grace_hopper.jpg'))
    assert pic.shape[0] == expect.shape[0] and pic.shape[1] > expect.shape[1]  # overlay + legend panel


def test_zeroshot_free_vocabulary_with_synonyms(photo):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(ZS_CFG, None, device='cpu', cache_dir='', show_progress=False)
    res = inf(photo, texts=[['person', 'man'], 'wall', 'flag'])
    cfg = load_cfg(ZS_CFG)
    cfg.model.class_names = [['person', 'man'], ['wall'], ['flag']]
    ref = build(cfg.model, 'mmseg')
    ref.load_state_dict(inf.model.state_dict())  # training-free: the same random tiny CLIP
    ref.eval()
    expect = _seg_forward(ref, cfg, photo).pred_sem_seg.data[0].numpy()
    got = res['predictions'][0]['sem_seg']
    assert np.array_equal(got, expect) and expect.max() <= 2
    assert res['classes'] == ['person', 'wall', 'flag']
    # back to the config's vocabulary: equals the config's model
    res = inf(photo)
    ref = build(load_cfg(ZS_CFG).model, 'mmseg')
    ref.load_state_dict(inf.model.state_dict())
    ref.eval()
    assert np.array_equal(res['predictions'][0]['sem_seg'],
                          _seg_forward(ref, load_cfg(ZS_CFG), photo).pred_sem_seg.data[0].numpy())


def test_seg_bad_input(photo_dir, det_ckpt, catseg_ckpt):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(ZS_CFG, None, device='cpu', cache_dir='', show_progress=False)
    with pytest.raises(ValueError, match='empty vocabulary'):
        inf(photo_dir, texts=',')
    with pytest.warns(UserWarning, match='b_broken.jpg'):
        res = inf(photo_dir, texts='sky, person')
    assert len(res['predictions']) == 2 and len(res['skipped']) == 1
    with pytest.raises(ValueError, match='does not fit'):
        OVSegInferencer(CATSEG_CFG, det_ckpt, device='cpu', cache_dir='')
    with pytest.raises(ValueError, match='CATSeg'):
        OVSegInferencer(DET_CFG, None, device='cpu', cache_dir='')


def test_vocabulary_parsing(tmp_path):
    from declip_mm.apis import parse_vocabulary
    v = parse_vocabulary('red umbrella, dachshund; sausage dog ,traffic cone')
    assert v.synonyms == [['red umbrella'], ['dachshund', 'sausage dog'], ['traffic cone']]
    f = tmp_path / 'v.txt'
    f.write_text('sky\nwet road; street\n\n')
    assert parse_vocabulary(str(f)).synonyms == [['sky'], ['wet road', 'street']]
    assert parse_vocabulary(['a', ['b', 'c']]).names == ['a', 'b']
    j = tmp_path / 'v.json'
    j.write_text('["sky", "wall, brick wall", ["road", "street"]]')
    assert parse_vocabulary(str(j)).synonyms == [['sky'], ['wall', 'brick wall'], ['road', 'street']]
    voc = parse_vocabulary('cls_voc21')  # a shipped list by name: background synonyms on the first line
    assert len(voc) == 21 and voc.synonyms[0][:2] == ['sky', 'wall'] and voc.names[1] == 'aeroplane'
    assert len(parse_vocabulary('catseg_ade150')) == 150
    assert parse_vocabulary('dog').synonyms == [['dog']]
    with pytest.raises(ValueError, match='duplicated'):
        parse_vocabulary('cat, dog, cat')
    e = tmp_path / 'e.txt'
    e.write_text('\n \n')
    with pytest.raises(ValueError, match='empty vocabulary'):
        parse_vocabulary(str(e))


def test_readme_python_inference_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python inference block, exactly as printed, in a folder with photos/ and photo.jpg."""
    import re
    import shutil
    from .conftest import REPO, photo_path
    text = open(osp.join(REPO, 'README.md'), encoding='utf-8').read()
    blocks = [b for b in re.findall(r'```python\n(.*?)```', text, re.S) if 'OVDetInferencer(' in b]
    assert len(blocks) == 1
    (tmp_path / 'photos').mkdir()
    shutil.copy(photo_path(), tmp_path / 'photos' / 'hopper.jpg')
    shutil.copy(photo_path(), tmp_path / 'photo.jpg')
    (tmp_path / 'configs').symlink_to(osp.join(REPO, 'configs'))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('DECLIP_MM_TEXT_CACHE', str(tmp_path / 'cache'))
    with pytest.warns(UserWarning, match='random weights'):
        exec(compile(blocks[0], 'README.md', 'exec'), {})
    printed = capsys.readouterr().out
    assert "['sky', 'road']" in printed and osp.isfile(tmp_path / 'out' / 'det' / 'vis' / 'hopper.jpg')
