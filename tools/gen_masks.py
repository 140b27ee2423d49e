"""Pre-generate (or check) class-agnostic region masks for the test set of a segmentation config.

Writes one ``<out-dir>/<image stem>.npz`` (key ``instance_mask``, int32 id map at the image's original size, 0 =
unsegmented; the format of CorrCLIP's published region masks) per image of ``test_dataloader.dataset``; images
whose file already exists are skipped, so an interrupted run resumes where it stopped.

    # SAM 2 with CorrCLIP's settings (8x8 points, IoU 0.4, stability 0.4, one mask per point)
    python tools/gen_masks.py configs/zeroshot_seg/trainingfree-maskvote_eva02-b16-declip_voc21-448.py \
        --generator sam2 --checkpoint checkpoints/sam2_hiera_large.pt --out-dir data/region_masks/voc
    # SAM (segment-anything)
    python tools/gen_masks.py CONFIG --generator sam --model-type vit_h --checkpoint checkpoints/sam_vit_h_4b8939.pth \
        --out-dir data/region_masks/voc
    # without --generator: the config's own mask source (CorrCLIP: model.proxy.mask_source; else the MaskVote one;
    # a generator source with cache_dir)
    # check a mask folder (e.g. downloaded masks) against the images: missing / unreadable / wrongly sized files
    python tools/gen_masks.py CONFIG --check data/region_masks/voc

Split a large set over several processes / GPUs with ``--shard I --num-shards N`` (images i with i % N == I).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='segmentation config (its test_dataloader.dataset lists the images)')
    p.add_argument('--out-dir', help='where the .npz files go (default: the config mask source\'s cache_dir)')
    p.add_argument('--generator', choices=['sam2', 'sam'], help='mask generator (default: the config\'s source)')
    p.add_argument('--checkpoint', help='local SAM 2 / SAM weight file')
    p.add_argument('--model-cfg', default='sam2_hiera_l.yaml', help='SAM 2 hydra config name')
    p.add_argument('--model-type', default='vit_h', help='SAM model type (vit_b / vit_l / vit_h)')
    p.add_argument('--points-per-side', type=int, default=8)
    p.add_argument('--pred-iou-thresh', type=float, default=0.4)
    p.add_argument('--stability-score-thresh', type=float, default=0.4)
    p.add_argument('--device', default=None, help='default: cuda if available')
    p.add_argument('--fp32', action='store_true', help='no fp16 on CUDA (CorrCLIP runs SAM 2 in fp16)')
    p.add_argument('--check', metavar='MASK_DIR', help='only check MASK_DIR against the images, generate nothing')
    p.add_argument('--overwrite', action='store_true', help='regenerate files that already exist')
    p.add_argument('--shard', type=int, default=0)
    p.add_argument('--num-shards', type=int, default=1)
    p.add_argument('--limit', type=int, default=None, help='only the first N images (of this shard)')
    p.add_argument('--cfg-options', nargs='+', action=_dict_action(), help='override config settings, key=value')
    return p.parse_args(argv)


def _dict_action():
    from mmengine.config import DictAction
    return DictAction


def dataset_image_paths(cfg):
    """Image paths of ``cfg.test_dataloader.dataset`` (built in the config's default scope)."""
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    ds_cfg = cfg.test_dataloader.dataset.copy()
    ds_cfg['pipeline'] = []
    ds = DATASETS.build(ds_cfg)
    ds.full_init()
    return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


def config_mask_source(cfg):
    """The config's region mask source: CorrCLIP's (``model.proxy.mask_source`` of a ``CorrCLIPAttention``), else
    the ``mask_source`` of the first ``MaskVote`` in ``cfg.model.postprocess`` (None if there is none)."""
    def as_dict(src):
        return src.to_dict() if hasattr(src, 'to_dict') else dict(src)
    proxy = cfg.model.get('proxy') or {}
    if str(proxy.get('type', '')).split('.')[-1] == 'CorrCLIPAttention' and proxy.get('mask_source'):
        return as_dict(proxy['mask_source'])
    for step in cfg.model.get('postprocess') or []:
        if step.get('type', '').split('.')[-1] == 'MaskVote' and step.get('mask_source'):
            return as_dict(step['mask_source'])
    return None


def make_source(args, cfg):
    from declip_mm.models.task_modules import GeneratedMaskSource, build_mask_source
    common = dict(points_per_side=args.points_per_side, pred_iou_thresh=args.pred_iou_thresh,
                  stability_score_thresh=args.stability_score_thresh, device=args.device)
    if args.generator == 'sam2':
        src = dict(type='SAM2MaskSource', checkpoint=args.checkpoint, model_cfg=args.model_cfg, half=not args.fp32,
                   **common)
    elif args.generator == 'sam':
        src = dict(type='SAMMaskSource', checkpoint=args.checkpoint, model_type=args.model_type, **common)
    else:
        src = config_mask_source(cfg)
        if src is None:
            raise SystemExit(f'error: {args.config} has no mask source (CorrCLIP\'s model.proxy.mask_source or a '
                             'MaskVote mask_source); pass --generator sam2|sam')
    if args.out_dir:
        src['cache_dir'] = args.out_dir
    source = build_mask_source(src)
    if not isinstance(source, GeneratedMaskSource):
        raise SystemExit(f'error: the mask source {source!r} generates nothing (it reads files); pass --generator '
                         'sam2|sam, or --check DIR to check a folder')
    if not source.cache_dir:
        raise SystemExit('error: no output folder: pass --out-dir (or set the source\'s cache_dir)')
    return source


def check_dir(mask_dir, paths):
    """Count missing / unreadable / wrongly sized mask files; returns the list of problems."""
    from mmengine.utils import ProgressBar
    from PIL import Image

    from declip_mm.models.task_modules import MaskFileError, MaskFileSource
    src = MaskFileSource(mask_dir)
    problems = []
    bar = ProgressBar(len(paths), file=sys.stdout)
    for p in paths:
        try:
            ids = src(p)
            with Image.open(p) as im:
                w, h = im.size
            if ids.shape != (h, w):
                problems.append(f'{src.path_for(p)} is {ids.shape[0]}x{ids.shape[1]} but the image {p} is {h}x{w}')
        except MaskFileError as e:
            problems.append(str(e))
        bar.update()
    return problems


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.utils import ProgressBar

    import declip_mm  # noqa: F401  (registers everything)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not 0 <= args.shard < args.num_shards:
        raise SystemExit(f'error: --shard must be in [0, {args.num_shards})')
    paths = dataset_image_paths(cfg)[args.shard::args.num_shards][:args.limit]
    print(f'{len(paths)} image(s) from {args.config}', flush=True)

    if args.check:
        problems = check_dir(args.check, paths)
        print(f'\n{len(paths) - len(problems)} of {len(paths)} mask file(s) usable in {args.check}')
        for line in problems[:50]:
            print('  ' + line)
        if len(problems) > 50:
            print(f'  ... and {len(problems) - 50} more')
        return dict(checked=len(paths), problems=problems)

    from declip_mm.models.task_modules import read_rgb, save_mask_file
    source = make_source(args, cfg)
    done = cached = 0
    failed = []
    bar = ProgressBar(len(paths), file=sys.stdout)
    for p in paths:
        if source.is_cached(p) and not args.overwrite:
            cached += 1
        else:
            try:
                rgb = read_rgb(p)
            except OSError as e:  # an unreadable image is reported, the run goes on
                failed.append(f'{p}: {e}')
            else:
                save_mask_file(source.path_for(p), source.generate(rgb))
                done += 1
        bar.update()
    print(f'\n{done} generated, {cached} already in {source.cache_dir}, {len(failed)} failed')
    for line in failed:
        print('  ' + line)
    if failed:
        sys.exit(1)
    return dict(generated=done, cached=cached, failed=failed)


if __name__ == '__main__':
    main()
