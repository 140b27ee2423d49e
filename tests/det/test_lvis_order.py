"""OV-LVIS: an annotation json whose categories are not in the class order fails at load (issue: silent mislabels)."""
import json

import pytest

from declip_mm.datasets.ov_detection import OVLVISV1Dataset


def _lvis_json(path, cat_order):
    names = {1: 'aerosol_can', 2: 'air_conditioner', 3: 'airplane'}
    ann = dict(
        info={}, licenses=[],
        images=[dict(id=7, width=64, height=48, coco_url='http://images.cocodataset.org/val2017/000000000007.jpg',
                     not_exhaustive_category_ids=[], neg_category_ids=[])],
        annotations=[dict(id=1, image_id=7, category_id=1, bbox=[2, 3, 10, 12], area=120, segmentation=[[2, 3, 12, 3,
                                                                                                       12, 15]]),
                     dict(id=2, image_id=7, category_id=3, bbox=[20, 5, 8, 9], area=72, segmentation=[[20, 5, 28, 5,
                                                                                                       28, 14]])],
        categories=[dict(id=i, name=names[i], frequency='r', synset=names[i]) for i in cat_order])
    path.write_text(json.dumps(ann))
    return str(path)


def _ds(ann_file):
    return OVLVISV1Dataset(ann_file=ann_file, data_root='', data_prefix=dict(img=''), metainfo=dict(classes=('aerosol_can', 'air_conditioner',
                                                                                     'airplane')),
                           pipeline=[], test_mode=True, lazy_init=False)


def test_sorted_json_labels_follow_class_order(tmp_path):
    ds = _ds(_lvis_json(tmp_path / 'a.json', [1, 2, 3]))
    labels = [i['bbox_label'] for i in ds.get_data_info(0)['instances']]
    assert labels == [0, 2]  # aerosol_can -> 0, airplane -> 2


def test_unsorted_json_is_refused_naming_the_category(tmp_path):
    with pytest.raises(ValueError, match=r"category #0 .*'airplane' \(id 3\).*'aerosol_can'"):
        _ds(_lvis_json(tmp_path / 'b.json', [3, 2, 1]))
