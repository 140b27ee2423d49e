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

from mmengine.utils import track_iter_progress  # noqa: E402

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


def _write_splits(ann_dir, out_dir, jobs, make):
    """jobs: (source json, output name, make() kwargs); one progress step per output (each source loaded once)."""
    out_dir = out_dir or ann_dir
    written, loaded = {}, {}
    for src, name, kwargs in track_iter_progress(jobs, file=sys.stdout):
        if src not in loaded:
            loaded.clear()  # the train json is large: keep one source in memory
            loaded[src] = _load(osp.join(ann_dir, src))
        path = osp.join(out_dir, name)
        _dump(make(loaded[src], **kwargs), path)
        written[name] = path
    return written


def run_coco(ann_dir, out_dir, train='instances_train2017.json', val='instances_val2017.json'):
    jobs = []
    if train:
        jobs += [(train, 'instances_train2017_seen_2.json', dict(keep_classes='base', all_categories=False)),
                 (train, 'instances_train2017_seen_2_65_cat.json', dict(keep_classes='base', all_categories=True))]
    if val:
        jobs.append((val, 'instances_val2017_all_2.json', dict(keep_classes='all', all_categories=True)))
    return _write_splits(ann_dir, out_dir, jobs, make_ov_coco_split)


def run_lvis(ann_dir, out_dir, train='lvis_v1_train.json'):
    return _write_splits(ann_dir, out_dir, [(train, 'lvis_v1_train_seen_1203_cat.json', {})], make_ov_lvis_split)


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
