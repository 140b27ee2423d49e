"""Build the open-vocabulary detection annotation files from the stock COCO / LVIS jsons (no Google-Drive files).

    # OV-COCO (OVR-CNN split, 48 base / 17 novel): reads ANN_DIR/instances_{train,val}2017.json, writes
    #   instances_train2017_seen_2.json          train, base annotations, 48 base categories listed
    #   instances_train2017_seen_2_65_cat.json   same images/annotations, all 65 categories listed (F-ViT reads this)
    #   instances_val2017_all_2.json             val, annotations of all 65 categories
    python tools/dataset_converters/make_ov_splits.py coco --ann-dir data/coco/annotations

    # OV-LVIS: reads ANN_DIR/lvis_v1_train.json, writes lvis_v1_train_seen_1203_cat.json (rare annotations removed,
    # 1203 categories kept).  Validation uses the stock lvis_v1_val.json.
    python tools/dataset_converters/make_ov_splits.py lvis --ann-dir data/coco/annotations

The class lists ship in declip_mm/data/ov_coco and declip_mm/data/ov_lvis.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from declip_mm.datasets.ov_detection import make_ov_coco_split, make_ov_lvis_split  # noqa: E402


def _load(path):
    if not osp.isfile(path):
        raise FileNotFoundError(f'annotation file not found: {path}')
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON ({e})') from e


def _dump(obj, path):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)
    print(f'wrote {path}: {len(obj["images"])} images, {len(obj["annotations"])} annotations, '
          f'{len(obj["categories"])} categories')


def run_coco(ann_dir, out_dir, train='instances_train2017.json', val='instances_val2017.json'):
    out_dir = out_dir or ann_dir
    written = {}
    if train:
        tr = _load(osp.join(ann_dir, train))
        seen = make_ov_coco_split(tr, 'base', all_categories=False)
        seen65 = make_ov_coco_split(tr, 'base', all_categories=True)
        del tr
        for name, obj in (('instances_train2017_seen_2.json', seen),
                          ('instances_train2017_seen_2_65_cat.json', seen65)):
            _dump(obj, osp.join(out_dir, name))
            written[name] = osp.join(out_dir, name)
    if val:
        va = _load(osp.join(ann_dir, val))
        allv = make_ov_coco_split(va, 'all', all_categories=True)
        _dump(allv, osp.join(out_dir, 'instances_val2017_all_2.json'))
        written['instances_val2017_all_2.json'] = osp.join(out_dir, 'instances_val2017_all_2.json')
    return written


def run_lvis(ann_dir, out_dir, train='lvis_v1_train.json'):
    out_dir = out_dir or ann_dir
    tr = _load(osp.join(ann_dir, train))
    out = make_ov_lvis_split(tr)
    path = osp.join(out_dir, 'lvis_v1_train_seen_1203_cat.json')
    _dump(out, path)
    return {'lvis_v1_train_seen_1203_cat.json': path}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('dataset', choices=['coco', 'lvis'])
    p.add_argument('--ann-dir', default='data/coco/annotations', help='folder holding the stock annotation jsons')
    p.add_argument('--out-dir', default=None, help='output folder (default: --ann-dir)')
    p.add_argument('--train', default=None, help='train json file name inside --ann-dir ("" to skip)')
    p.add_argument('--val', default=None, help='(coco) val json file name inside --ann-dir ("" to skip)')
    args = p.parse_args(argv)
    if args.dataset == 'coco':
        return run_coco(args.ann_dir, args.out_dir,
                        'instances_train2017.json' if args.train is None else args.train,
                        'instances_val2017.json' if args.val is None else args.val)
    return run_lvis(args.ann_dir, args.out_dir, 'lvis_v1_train.json' if args.train is None else args.train)


if __name__ == '__main__':
    main()
