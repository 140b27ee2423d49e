"""tools/dataset_converters/make_ov_splits.py on tiny stock-format COCO / LVIS jsons."""
import json

from declip_mm.datasets.ov_detection import (LVIS_V1_CLASSES, OV_COCO_BASE_CLASSES, OV_COCO_CLASSES,
                                             OV_COCO_NOVEL_CLASSES, lvis_v1_categories)
from .conftest import load_tool


def _stock_coco(split):
    cats = json.load(open(__import__('declip_mm.datasets.ov_detection', fromlist=['x']).data_path(
        'ov_coco/coco_categories.json')))
    name2id = {c['name']: c['id'] for c in cats}
    off = 0 if split == 'train' else 100
    images = [dict(id=off + i, file_name=f'{off + i:012d}.jpg', height=10, width=10) for i in range(1, 6)]
    per_img = {1: ['person', 'dog'], 2: ['cat'], 3: ['traffic light'], 4: ['car', 'bus', 'hair drier'], 5: []}
    anns, aid = [], off * 10 + 1
    for i, names in per_img.items():
        for n in names:
            anns.append(dict(id=aid, image_id=off + i, category_id=name2id[n], bbox=[1, 1, 3, 3], area=9,
                             iscrowd=int(n == 'person'), segmentation=[[1, 1, 4, 1, 4, 4]]))
            aid += 1
    return dict(info={}, licenses=[], images=images, annotations=anns, categories=cats), name2id


def test_coco_split(tmp_path):
    tool = load_tool('tools/dataset_converters/make_ov_splits.py')
    tr, name2id = _stock_coco('train')
    va, _ = _stock_coco('val')
    (tmp_path / 'instances_train2017.json').write_text(json.dumps(tr))
    (tmp_path / 'instances_val2017.json').write_text(json.dumps(va))
    written = tool.main(['coco', '--ann-dir', str(tmp_path), '--out-dir', str(tmp_path / 'out')])
    seen = json.load(open(written['instances_train2017_seen_2.json']))
    seen65 = json.load(open(written['instances_train2017_seen_2_65_cat.json']))
    val = json.load(open(written['instances_val2017_all_2.json']))
    id2name = {v: k for k, v in name2id.items()}
    # categories: 65 with original ids in id order; seen_2 lists only the 48 base
    assert [c['name'] for c in seen65['categories']] == list(OV_COCO_CLASSES)
    assert [c['id'] for c in seen65['categories']] == sorted(name2id[n] for n in OV_COCO_CLASSES)
    assert [c['name'] for c in seen['categories']] == list(OV_COCO_BASE_CLASSES)
    assert [c['name'] for c in val['categories']] == list(OV_COCO_CLASSES)
    # train: base annotations only (crowd kept), images without any dropped
    tr_names = sorted(id2name[a['category_id']] for a in seen65['annotations'])
    assert tr_names == ['car', 'person']
    assert any(a['iscrowd'] for a in seen65['annotations'])
    assert sorted(im['id'] for im in seen65['images']) == [1, 4]
    assert seen['annotations'] == seen65['annotations'] and seen['images'] == seen65['images']
    # val: all 65-class annotations (base + novel), dropped classes removed, images without any dropped
    va_names = sorted(id2name[a['category_id']] for a in val['annotations'])
    assert va_names == ['bus', 'car', 'cat', 'dog', 'person']
    assert set(OV_COCO_NOVEL_CLASSES) & set(va_names) == {'bus', 'cat', 'dog'}
    assert sorted(im['id'] for im in val['images']) == [101, 102, 104]
    # image sets preserved: train images only in train, val only in val
    assert {im['id'] for im in seen65['images']} <= {im['id'] for im in tr['images']}
    assert {im['id'] for im in val['images']} <= {im['id'] for im in va['images']}
    assert len(OV_COCO_CLASSES) == 65 and len(OV_COCO_NOVEL_CLASSES) == 17 and len(OV_COCO_BASE_CLASSES) == 48


def test_lvis_split(tmp_path):
    tool = load_tool('tools/dataset_converters/make_ov_splits.py')
    cats = [dict(c, synset='x', synonyms=[c['name']], image_count=5, instance_count=7) for c in lvis_v1_categories()]
    freq = {c['id']: c['frequency'] for c in cats}
    rare = [c['id'] for c in cats if c['frequency'] == 'r'][:2]
    common = [c['id'] for c in cats if c['frequency'] == 'c'][:1]
    freq_ids = [c['id'] for c in cats if c['frequency'] == 'f'][:1]
    images = [dict(id=i, coco_url=f'http://images.cocodataset.org/train2017/{i:012d}.jpg', height=10, width=10,
                   neg_category_ids=[], not_exhaustive_category_ids=[]) for i in (1, 2, 3)]
    anns = [dict(id=1, image_id=1, category_id=rare[0], bbox=[0, 0, 2, 2], area=4),
            dict(id=2, image_id=1, category_id=common[0], bbox=[0, 0, 2, 2], area=4),
            dict(id=3, image_id=2, category_id=rare[1], bbox=[0, 0, 2, 2], area=4),
            dict(id=4, image_id=3, category_id=freq_ids[0], bbox=[0, 0, 2, 2], area=4)]
    (tmp_path / 'lvis_v1_train.json').write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    written = tool.main(['lvis', '--ann-dir', str(tmp_path)])
    out = json.load(open(written['lvis_v1_train_seen_1203_cat.json']))
    assert len(out['categories']) == 1203 and [c['name'] for c in out['categories']] == list(LVIS_V1_CLASSES)
    assert sorted(a['id'] for a in out['annotations']) == [2, 4]
    assert all(freq[a['category_id']] != 'r' for a in out['annotations'])
    assert len(out['images']) == 3  # images are kept; filter_empty_gt drops image 2 at load time
    zero = [c for c in out['categories'] if c['image_count'] == 0 and c['frequency'] == 'r']
    assert len([c for c in out['categories'] if c['frequency'] == 'r']) == 337 == len(zero)
    by_id = {c['id']: c for c in out['categories']}
    assert by_id[common[0]]['image_count'] == 1 and by_id[common[0]]['instance_count'] == 1


def test_ov_coco_dataset_checks_classes(tmp_path):
    import pytest

    from declip_mm.datasets.ov_detection import OVCocoDataset, make_ov_coco_split
    tr, _ = _stock_coco('train')
    ann = make_ov_coco_split(tr, 'base', all_categories=True)
    (tmp_path / 'ok.json').write_text(json.dumps(ann))
    ds = OVCocoDataset(ann_file=str(tmp_path / 'ok.json'), data_prefix=dict(img=''), pipeline=[])
    assert len(ds.metainfo['classes']) == 65 and len(ds.metainfo['novel_classes']) == 17
    labels = sorted(i['bbox_label'] for d in ds for i in d['instances'])
    assert labels == [OV_COCO_CLASSES.index('person'), OV_COCO_CLASSES.index('car')]
    seen = make_ov_coco_split(tr, 'base', all_categories=False)  # 48 categories only
    (tmp_path / 'seen48.json').write_text(json.dumps(seen))
    with pytest.raises(ValueError, match='65 classes configured but only 48'):
        OVCocoDataset(ann_file=str(tmp_path / 'seen48.json'), data_prefix=dict(img=''), pipeline=[])


def test_ov_coco_labels_follow_class_names_not_json_order(tmp_path):
    """A json whose categories are not sorted by id (here reversed) must still label `person` as the index of
    'person' in the class list (= its text-embedding row); mmdet's CocoDataset would give it the json position."""
    import pytest

    from declip_mm.datasets.ov_detection import OVCocoDataset, make_ov_coco_split
    tr, _ = _stock_coco('train')
    ann = make_ov_coco_split(tr, 'base', all_categories=True)
    ann['categories'] = ann['categories'][::-1]
    (tmp_path / 'rev.json').write_text(json.dumps(ann))
    ds = OVCocoDataset(ann_file=str(tmp_path / 'rev.json'), data_prefix=dict(img=''), pipeline=[])
    id2name = {c['id']: c['name'] for c in ann['categories']}
    got = sorted((i['bbox_label'], id2name[ds.cat_ids[i['bbox_label']]]) for d in ds for i in d['instances'])
    assert got == sorted([(OV_COCO_CLASSES.index('person'), 'person'), (OV_COCO_CLASSES.index('car'), 'car')])
    assert [id2name[c] for c in ds.cat_ids] == list(OV_COCO_CLASSES)
    # a custom class order (e.g. a text-embedding file in another order) is followed as well
    order = list(OV_COCO_CLASSES)[::-1]
    ds2 = OVCocoDataset(ann_file=str(tmp_path / 'rev.json'), data_prefix=dict(img=''), pipeline=[],
                        metainfo=dict(classes=order))
    labels = sorted(i['bbox_label'] for d in ds2 for i in d['instances'])
    assert labels == sorted([order.index('person'), order.index('car')])
    # a name listed twice is refused
    dup = dict(ann, categories=ann['categories'] + [dict(id=999, name='person')])
    (tmp_path / 'dup.json').write_text(json.dumps(dup))
    with pytest.raises(ValueError, match='more than once'):
        OVCocoDataset(ann_file=str(tmp_path / 'dup.json'), data_prefix=dict(img=''), pipeline=[])
