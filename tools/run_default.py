"""The embedded default, end to end on CPU with tiny random models and generated data (no downloads).

Stages (all by default, in order; pick with --stages):
  backbone  DeCLIPViT in every last-block mode on a real photo: proxy-token attention maps + feature shapes
  distill   DeCLIP distillation (tiny EVA student, tiny DINOv2-style VFM, ~100 generated images): losses at
            start / end, before/after correlation maps, and the exported backbone checkpoint
  det       F-ViT on the synthetic OV shapes set with the distilled backbone: train, then test (base/novel AP50)
  ovdquo    OV-DQUO (open-vocabulary DINO with text queries, wildcard matching of the set's open-world pseudo
            boxes and denoising text queries) on the same set and backbone: one short epoch, then test
  seg       CAT-Seg trained a few iterations and the training-free segmentor (plain, and with ProxyCLIP's proxy
            attention from a tiny random DINO), all on the distilled backbone, on generated scenes: mIoU and
            overlay pictures
  infer     open-vocabulary inference on a real photo (matplotlib's grace_hopper.jpg) with a free-text vocabulary
            through tools/infer.py (det with the det stage's F-ViT, seg with its CAT-Seg, zeroshot): pictures,
            predictions.json; with random tiny weights the labels are meaningless
The det, ovdquo and seg stages use the distill stage's export when it exists (else the tiny random backbone).
"""
import argparse
import glob
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))
sys.path.insert(0, ROOT)


def _latest_export(out_dir):
    files = sorted(glob.glob(osp.join(out_dir, 'distill', 'backbone_epoch_*.pth')),
                   key=lambda p: int(p.rsplit('_', 1)[1].split('.')[0]))
    return files[-1] if files else None


def _backbone_opt(out_dir):
    export = _latest_export(out_dir)
    if export:
        print(f'using the distilled backbone {export}')
        return [f'model.backbone.checkpoint={export}']
    print('no distilled backbone found (run the distill stage first): using the tiny random backbone')
    return []


def stage_backbone(out_dir):
    import demo_backbone
    png = demo_backbone.main(['--out-dir', osp.join(out_dir, 'backbone')])
    return f'proxy-token attention per mode: {png}'


def stage_distill(out_dir):
    import run_default_distill
    history = run_default_distill.main(['--work-dir', osp.join(out_dir, 'distill'),
                              '--cfg-options', f'train_dataloader.dataset.data_root={osp.join(out_dir, "distill_data")}'])
    first, last = history[0], history[-1]
    losses = ', '.join(f'{k} {first[k]:.3f} -> {last[k]:.3f}' for k in first if k != 'loss')
    return f'{losses}; exported backbone {_latest_export(out_dir)}'


def stage_det(out_dir):
    import make_synthetic_det
    import test as test_tool
    import train as train_tool
    cfg = osp.join(ROOT, 'configs', 'fvit', 'fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
    root = osp.join(out_dir, 'det_data') + '/'
    paths = make_synthetic_det.main(['--out', root])
    opts = ['--cfg-options', f'data_root={root}', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}annotations/val.json', f'test_evaluator.ann_file={root}annotations/val.json',
            f'model.roi_head.bbox_head.text_embeddings={paths["text_embeddings"]}'] + _backbone_opt(out_dir)
    work = osp.join(out_dir, 'det')
    train_tool.main([cfg, '--work-dir', work] + opts)
    metrics = test_tool.main([cfg, osp.join(work, 'epoch_1.pth'), '--work-dir', osp.join(work, 'test')] + opts)
    return 'F-ViT (1 epoch, random text tower): ' + ', '.join(
        f'{k.split("/")[-1]} {100 * metrics[k]:.2f}' for k in ('coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP_50'))


def stage_ovdquo(out_dir):
    import make_synthetic_det
    import test as test_tool
    import train as train_tool
    cfg = osp.join(ROOT, 'configs', 'ovdquo', 'ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
    root = osp.join(out_dir, 'det_data') + '/'
    text = osp.join(root, 'text_embeddings_tiny_eva.pt')
    if not (osp.isfile(text) and osp.isfile(osp.join(root, 'annotations', 'train_pseudo.json'))):
        make_synthetic_det.main(['--out', root])  # the det stage's set (with pseudo boxes and the 'object' row)
    ann = f'{root}annotations/val.json'
    opts = ['--cfg-options', f'data_root={root}', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}', f'model.text_embeddings={text}'
            ] + _backbone_opt(out_dir)
    work = osp.join(out_dir, 'ovdquo')
    # no validation during training: evaluated once, by tools/test.py below
    runner = train_tool.main([cfg, '--work-dir', work] + opts + ['val_cfg=None', 'val_dataloader=None',
                                                                  'val_evaluator=None'])
    ds = runner.train_dataloader.dataset
    metrics = test_tool.main([cfg, osp.join(work, 'epoch_1.pth'), '--work-dir', osp.join(work, 'test')] + opts)
    return (f'OV-DQUO ({runner.iter} iterations, {ds.pseudo_stats.get("merged", 0)} pseudo boxes, random text '
            'tower): ' + ', '.join(f'{k.split("/")[-1]} {100 * metrics[k]:.2f}'
                                   for k in ('coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP_50')))


def stage_seg(out_dir):
    import test as test_tool
    import train as train_tool
    root = osp.join(out_dir, 'seg_data')
    backbone = _backbone_opt(out_dir)
    cfg = osp.join(ROOT, 'configs', 'catseg', 'catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py')
    work = osp.join(out_dir, 'catseg')
    opts = ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}'] + backbone
    train_tool.main([cfg, '--work-dir', work] + opts)
    ckpt = sorted(glob.glob(osp.join(work, 'iter_*.pth')), key=osp.getmtime)[-1]
    m = test_tool.main([cfg, ckpt, '--work-dir', osp.join(work, 'test')] + opts)
    summary = f'CAT-Seg mIoU {m["mIoU"]:.2f} (overlays under {osp.join(work, "test")})'
    cfg = osp.join(ROOT, 'configs', 'zeroshot_seg', 'trainingfree_tiny-eva02_ov-scenes-synthetic.py')
    work = osp.join(out_dir, 'zeroshot_seg')
    m = test_tool.main([cfg, '--work-dir', work, '--cfg-options', f'test_dataloader.dataset.data_root={root}']
                       + backbone)
    summary += f'; training-free mIoU {m["mIoU"]:.2f} (overlays under {work})'
    cfg = osp.join(ROOT, 'configs', 'zeroshot_seg', 'proxyclip_tiny-eva02_tiny-dino-b8_ov-scenes-synthetic.py')
    work = osp.join(out_dir, 'proxyclip_seg')
    m = test_tool.main([cfg, '--work-dir', work, '--cfg-options', f'test_dataloader.dataset.data_root={root}']
                       + backbone)
    return summary + f'; ProxyCLIP (tiny DINO proxy attention) mIoU {m["mIoU"]:.2f} (overlays under {work})'


INFER_TEXTS = 'person, necktie, military uniform, flag, wall'


def sample_photo():
    import matplotlib
    return osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')


def _latest(pattern):
    files = sorted(glob.glob(pattern), key=osp.getmtime)
    return files[-1] if files else None


def stage_infer(out_dir):
    import infer as infer_tool
    photo = sample_photo()
    runs = [('det', osp.join(ROOT, 'configs', 'fvit', 'fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py'),
             _latest(osp.join(out_dir, 'det', 'epoch_*.pth')), ['--pred-score-thr', '0.3']),
            ('seg', osp.join(ROOT, 'configs', 'catseg', 'catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py'),
             _latest(osp.join(out_dir, 'catseg', 'iter_*.pth')), []),
            ('zeroshot', osp.join(ROOT, 'configs', 'zeroshot_seg', 'trainingfree_tiny-eva02_ov-scenes-synthetic.py'), None,
             ['--cfg-options'] + _backbone_opt(out_dir))]
    parts = []
    for kind, cfg, ckpt, extra in runs:
        if kind != 'zeroshot' and ckpt is None:
            print(f'no trained {kind} checkpoint (run the {kind if kind == "det" else "seg"} stage first): '
                  'random weights')
        work = osp.join(out_dir, 'infer', kind)
        extra = extra if extra != ['--cfg-options'] else []  # no distilled backbone: nothing to override
        out = infer_tool.main([kind, cfg, photo] + (['--weights', ckpt] if ckpt else []) + [
            '--texts', INFER_TEXTS, '--out-dir', work, '--device', 'cpu',
            '--cache-dir', osp.join(out_dir, 'infer', 'text_cache')] + extra)
        pred = out['predictions'][0]
        if kind == 'det':  # every box is in the predictions; the picture shows those above --pred-score-thr
            shown = [(n, s) for n, s in zip(pred['label_names'], pred['scores']) if s >= 0.3]
            top = ', '.join(f'{n} {s:.2f}' for n, s in shown[:3])
            parts.append(f'det {len(shown)} boxes above 0.3 ({top or "none"})')
        else:
            top = sorted(pred['present'].items(), key=lambda kv: -kv[1])[:3]
            parts.append(f'{kind} ' + ', '.join(f'{n} {100 * f:.0f}%' for n, f in top))
    return (f'{osp.basename(photo)} with "{INFER_TEXTS}": ' + '; '.join(parts) +
            f' (random tiny weights: labels are meaningless); pictures under {osp.join(out_dir, "infer")}/*/vis')


STAGES = {'backbone': stage_backbone, 'distill': stage_distill, 'det': stage_det, 'ovdquo': stage_ovdquo,
          'seg': stage_seg, 'infer': stage_infer}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out-dir', default=osp.join(ROOT, 'outputs', 'default'))
    p.add_argument('--stages', nargs='+', default=list(STAGES), choices=list(STAGES))
    args = p.parse_args(argv)
    out_dir = osp.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    t_all = time.time()
    summary = []
    for name in args.stages:
        t0 = time.time()
        print(f'\n=== stage: {name} ===', flush=True)
        result = STAGES[name](out_dir)
        summary.append(f'  {name:8s} {time.time() - t0:5.1f}s  {result}')
        print(f'=== {name} done in {time.time() - t0:.1f}s ===', flush=True)
    print('\nEmbedded default (tiny random models, generated data; numbers show the plumbing, not accuracy):')
    print('\n'.join(summary))
    print(f'All stages done in {time.time() - t_all:.0f}s; outputs under {out_dir}')


if __name__ == '__main__':
    main()
