"""Open-vocabulary inference on your own images with your own class names.

    python tools/infer.py det CONFIG [CHECKPOINT] IMAGES --texts "red umbrella, dachshund" --out-dir out/
    python tools/infer.py seg CONFIG CHECKPOINT IMAGES --texts "sky, wet road, graffiti" --out-dir out/
    python tools/infer.py zeroshot CONFIG IMAGES --texts classes.txt --out-dir out/

IMAGES: an image, a folder or several of them.  --texts: comma-separated names (synonyms of one class split by
";"), a .txt file (one class a line) / .json list, or a shipped list name (cls_voc21, catseg_ade150).  Writes one
picture per image to OUT_DIR/vis/ (boxes with name + score; segmentation overlay with a legend of the names that
occur), segmentation label maps to OUT_DIR/pred/<image>.png (pixel value = index into "classes"), and
OUT_DIR/predictions.json.  Unreadable images are
skipped and listed ("skipped") and the run continues.  Text embeddings are cached on disk (--cache-dir).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

KINDS = dict(det='FViT', seg='CATSeg', zeroshot='DeCLIPZeroShotSegmentor')
CKPT_EXT = ('.pth', '.pt', '.ckpt', '.bin')


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('kind', choices=list(KINDS), help='det: F-ViT; seg: CAT-Seg; zeroshot: training-free segmentor')
    p.add_argument('config')
    p.add_argument('paths', nargs='+', metavar='[CHECKPOINT] IMAGES',
                   help='optional checkpoint (.pth/.pt), then images or folders')
    p.add_argument('--texts', default=None, help='class names (comma-separated, ";" between synonyms) or a file; '
                   'default: the config\'s classes')
    p.add_argument('--base-texts', default=None, help='det: names among --texts seen in training (ensemble alpha)')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--score-thr', type=float, default=0.3, help='det: lowest score drawn and listed')
    p.add_argument('--prob-thr', type=float, default=None,
                   help='zeroshot: pixels below this class probability are left unlabelled (255)')
    p.add_argument('--device', default=None, help='e.g. cpu, cuda:0 (default: cuda if available)')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--text-checkpoint', default=None,
                   help='det: CLIP file holding the text tower (default: the backbone checkpoint)')
    p.add_argument('--cache-dir', default=None, help='text-embedding cache (default ~/.cache/declip_mm/...; '
                   '"" disables)')
    p.add_argument('--show', action='store_true', help='also show each picture in a window')
    p.add_argument('--wait-time', type=float, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config settings, key=value pairs')
    args = p.parse_args(argv)
    args.checkpoint = None
    if len(args.paths) > 1 and args.paths[0].endswith(CKPT_EXT) or \
            len(args.paths) == 1 and args.paths[0].endswith(CKPT_EXT):
        args.checkpoint, args.paths = args.paths[0], args.paths[1:]
    if not args.paths:
        p.error('no IMAGES given')
    return args


def build_inferencer(args):
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    typ = cfg.model.get('type')
    if typ != KINDS[args.kind]:
        kind = {v: k for k, v in KINDS.items()}.get(typ)
        raise SystemExit(f'error: {args.config} is a {typ} config; use "tools/infer.py {kind or "?"} ..." '
                         f'("{args.kind}" expects {KINDS[args.kind]})')
    from declip_mm.apis import OVDetInferencer, OVSegInferencer
    if args.kind == 'det':
        return OVDetInferencer(cfg, args.checkpoint, device=args.device, text_checkpoint=args.text_checkpoint,
                               cache_dir=args.cache_dir)
    return OVSegInferencer(cfg, args.checkpoint, device=args.device, cache_dir=args.cache_dir,
                           prob_thd=args.prob_thr)


def main(argv=None):
    args = parse_args(argv)
    from declip_mm.apis import parse_vocabulary
    if args.texts is not None:
        try:
            parse_vocabulary(args.texts)
        except ValueError as e:
            raise SystemExit(f'error: {e}')
    try:
        inferencer = build_inferencer(args)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    inputs = []
    for p in args.paths:
        inputs += inferencer._inputs_to_list(p) if osp.isdir(p) else [p]
    kw = dict(texts=args.texts, batch_size=args.batch_size, out_dir=args.out_dir, show=args.show,
              wait_time=args.wait_time)
    if args.kind == 'det':
        kw.update(base_texts=args.base_texts, pred_score_thr=args.score_thr)
    res = inferencer(sorted(inputs) if all(isinstance(i, str) for i in inputs) else inputs, **kw)
    os.makedirs(args.out_dir, exist_ok=True)
    preds = res['predictions']
    if args.kind != 'det':
        import mmcv
        import numpy as np
        pred_dir = osp.join(args.out_dir, 'pred')
        os.makedirs(pred_dir, exist_ok=True)
        for d in preds:
            name = osp.splitext(osp.basename(d['input']))[0] + '.png'
            seg = d.pop('sem_seg')
            mmcv.imwrite(seg.astype(np.uint16 if seg.max() > 255 else np.uint8), osp.join(pred_dir, name))
            d['label_map'] = osp.join('pred', name)
    out = dict(kind=args.kind, config=args.config, checkpoint=args.checkpoint, classes=res['classes'],
               predictions=preds, skipped=res['skipped'], timings=inferencer.timings)
    with open(osp.join(args.out_dir, 'predictions.json'), 'w') as f:
        json.dump(out, f, indent=1)
    n = len(preds)
    print(f'{n} image(s) -> {osp.join(args.out_dir, "vis")}/, predictions.json'
          + (f'; skipped {len(res["skipped"])}: ' + ', '.join(s['input'] for s in res['skipped'])
             if res['skipped'] else ''))
    return out


if __name__ == '__main__':
    main()
