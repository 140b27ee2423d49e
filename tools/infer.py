"""Open-vocabulary inference on your own images with your own class names (a thin CLI over
declip_mm.apis.OVDetInferencer / OVSegInferencer, themselves mmdet's DetInferencer / mmseg's MMSegInferencer).

    python tools/infer.py det CONFIG IMAGE... --weights CKPT --texts "red umbrella, dachshund" --out-dir out/
    python tools/infer.py seg CONFIG IMAGE... --weights CKPT --texts "sky, wet road, graffiti" --out-dir out/
    python tools/infer.py zeroshot CONFIG IMAGE... --texts classes.txt --out-dir out/

IMAGE: an image file or a folder (its images, not recursive); several may be given.  --texts: comma-separated
names (synonyms of one class split by ";"), a .txt file (one class a line) / .json list, or a shipped list name
(cls_voc21, catseg_ade150); default: the config's classes.  Written, each as its image finishes:
  OUT_DIR/vis/NAME.EXT       picture (boxes with name + score above --pred-score-thr; segmentation overlay with a
                             legend of the names that occur)
  OUT_DIR/preds/NAME.json    det: labels (int), label_names, scores, bboxes (x1, y1, x2, y2), every box
  OUT_DIR/pred/NAME.png      seg: label map, pixel = index into "classes"; uint8 (255 = unlabelled) up to 255
                             classes, else uint16 (65535 = unlabelled)
  OUT_DIR/predictions.json   everything, also (marked "complete": false) when the run is interrupted
NAME is the image's path relative to the images' common folder without its extension; images that would share
a name keep their extension in it (a/photo.jpg, a/photo.png -> a/photo_jpg, a/photo_png).  Unreadable images
are skipped and listed ("skipped"); the run goes on.  Text embeddings are cached on disk (--cache-dir).
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

KINDS = ('det', 'seg', 'zeroshot')
CKPT_EXT = ('.pth', '.pt', '.ckpt', '.bin', '.tar', '.safetensors')
SAVE_EVERY_S = 30.0  # predictions.json is rewritten at most this often while a run goes on (and at its end)


def build_parser():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage='%(prog)s {det,seg,zeroshot} CONFIG IMAGE [IMAGE ...] [--weights CKPT] [--texts TEXTS] '
              '--out-dir OUT_DIR [options]')
    p.add_argument('kind', choices=KINDS, help='det: detector (F-ViT, OV-DQUO); seg: trained segmentor (CAT-Seg); '
                   'zeroshot: training-free segmentor')
    p.add_argument('config', metavar='CONFIG', help='model config file')
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files or folders')
    p.add_argument('--weights', metavar='CKPT', default=None,
                   help='trained checkpoint (any file name); without it det / seg run with random weights')
    p.add_argument('--texts', default=None, help='class names (comma-separated, ";" between synonyms), a file or a '
                   'shipped list; default: the config\'s classes')
    p.add_argument('--base-texts', default=None, help='det: names among the vocabulary seen in training '
                   '(F-ViT: score ensemble alpha; OV-DQUO: not boosted); all others are novel')
    p.add_argument('--out-dir', required=True, help='output folder (created)')
    p.add_argument('--pred-score-thr', '--score-thr', dest='score_thr', type=float, default=0.3,
                   help='det: lowest score drawn (every box is kept in the predictions, as mmdet)')
    p.add_argument('--prob-thr', type=float, default=None,
                   help='zeroshot: pixels below this class probability are left unlabelled')
    p.add_argument('--opacity', type=float, default=0.5, help='seg: overlay opacity')
    p.add_argument('--device', default=None, help='e.g. cpu, cuda, cuda:0 (default: cuda if available)')
    p.add_argument('--batch-size', type=int, default=1, help='images per forward (at least 1)')
    p.add_argument('--text-checkpoint', default=None,
                   help='det: CLIP file holding the text tower (default: the backbone checkpoint)')
    p.add_argument('--cache-dir', default=None, help='text-embedding cache (default ~/.cache/declip_mm/...; '
                   '"" disables)')
    p.add_argument('--no-save-vis', action='store_true', help='write no pictures')
    p.add_argument('--no-save-pred', action='store_true', help='write no per-image prediction files')
    p.add_argument('--print-result', action='store_true', help='print each image\'s prediction')
    p.add_argument('--show', action='store_true', help='also show each picture in a window')
    p.add_argument('--wait-time', type=float, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config settings, key=value pairs')
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def fail(msg) -> None:
    """A user error: one line on stderr (via SystemExit), exit status 1, no traceback."""
    raise SystemExit(f'error: {msg}')


def check_inputs(args):
    """Everything that can be checked without the model: paths, device, vocabulary.  Returns (cfg, images)."""
    from mmengine.config import Config

    from declip_mm.apis import OVDetInferencer, OVSegInferencer
    from declip_mm.apis.base import check_device, list_inputs
    from declip_mm.utils.remote_files import is_remote
    if not osp.isfile(args.config):
        fail(f'config not found: {args.config}')
    if args.weights is not None and not is_remote(args.weights) and not osp.isfile(args.weights):
        fail(f'checkpoint not found: {args.weights}')
    if args.text_checkpoint is not None and not is_remote(args.text_checkpoint) \
            and not osp.isfile(args.text_checkpoint):
        fail(f'text checkpoint not found: {args.text_checkpoint}')
    if args.batch_size < 1:
        fail(f'--batch-size must be at least 1, got {args.batch_size}')
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        fail(f'--out-dir {args.out_dir} is a file, not a folder')
    for p in args.images:
        if osp.isfile(p) and p.lower().endswith(CKPT_EXT):
            fail(f'{p} looks like a checkpoint, not an image: pass it with --weights')
    try:
        check_device(args.device)
        images = list_inputs(list(args.images))
    except (ValueError, FileNotFoundError) as e:
        fail(e)
    try:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
    except Exception as e:  # a broken config file: say which
        fail(f'cannot read config {args.config}: {type(e).__name__}: {e}')
    try:
        if args.kind == 'det':
            if args.prob_thr is not None:
                fail('--prob-thr is for zeroshot segmentation')
            OVDetInferencer.check_vocabulary(cfg, args.texts, args.base_texts)
        else:
            if args.base_texts:
                fail('--base-texts is for det')
            OVSegInferencer.check_vocabulary(cfg, args.texts)
    except (ValueError, FileNotFoundError) as e:
        other = _kind_of(cfg)
        if other and other != ('det' if args.kind == 'det' else 'seg'):
            fail(f'{args.config} is a {other} config ({cfg.model.get("type")}); use "tools/infer.py '
                 f'{"det" if other == "det" else "seg"} ..." (or zeroshot for a training-free segmentor)')
        fail(e)
    return cfg, images


def _kind_of(cfg):
    from declip_mm.apis import OVDetInferencer, OVSegInferencer
    for kind, check in (('det', OVDetInferencer.config_vocabulary), ('seg', OVSegInferencer.check_vocabulary)):
        try:
            check(cfg)
            return kind
        except Exception:
            pass
    return None


def build_inferencer(args, cfg):
    from declip_mm.apis import OVDetInferencer, OVSegInferencer
    if args.kind == 'det':
        return OVDetInferencer(cfg, args.weights, device=args.device, text_checkpoint=args.text_checkpoint,
                               cache_dir=args.cache_dir)
    return OVSegInferencer(cfg, args.weights, device=args.device, cache_dir=args.cache_dir, prob_thd=args.prob_thr)


def main(argv=None):
    args = parse_args(argv)
    cfg, images = check_inputs(args)
    try:
        inferencer = build_inferencer(args, cfg)
    except (ValueError, FileNotFoundError) as e:
        fail(e)
    from declip_mm.apis.base import dump_json
    os.makedirs(args.out_dir, exist_ok=True)
    out_file = osp.join(args.out_dir, 'predictions.json')
    done = []
    state = dict(last=time.monotonic())

    def record(complete: bool) -> dict:
        res = inferencer.last_result
        out = dict(kind=args.kind, config=args.config, weights=args.weights,
                   classes=list(getattr(inferencer, 'label_names', [])))
        if args.kind != 'det':
            from declip_mm.apis.base import unlabelled_index
            out['unlabelled'] = unlabelled_index(len(out['classes']))
        out.update(predictions=done, skipped=res.get('skipped', []), timings=dict(inferencer.timings),
                   complete=complete)
        dump_json(out, out_file)
        return out

    def on_result(d):
        d = {k: v for k, v in d.items() if k != 'sem_seg'}  # seg: the label map is its PNG file
        done.append(d)
        if time.monotonic() - state['last'] >= SAVE_EVERY_S:
            record(False)
            state['last'] = time.monotonic()

    kw = dict(texts=args.texts, batch_size=args.batch_size, out_dir=args.out_dir, show=args.show,
              wait_time=args.wait_time, no_save_vis=args.no_save_vis, no_save_pred=args.no_save_pred,
              print_result=args.print_result, on_result=on_result)
    if args.kind == 'det':
        kw.update(base_texts=args.base_texts, pred_score_thr=args.score_thr)
    else:
        kw.update(opacity=args.opacity)
    complete = False
    try:
        inferencer(images, **kw)
        complete = True
    except (ValueError, FileNotFoundError) as e:
        fail(e)  # what was done is still written (finally)
    except KeyboardInterrupt:
        print(f'\ninterrupted after {len(done)} image(s); what was done is in {args.out_dir}', file=sys.stderr)
        raise
    finally:
        if done or complete:
            out = record(complete)
    res = inferencer.last_result
    if not done:
        fail(f'none of the {len(res["skipped"])} image(s) could be read: ' +
             '; '.join(f'{s["input"]}: {s["error"]}' for s in res['skipped'][:3]).replace('\n', ' '))
    print(f'{len(done)} image(s) -> {args.out_dir}/ (' + ', '.join(
        x for x, on in (('vis/', not args.no_save_vis), ('preds/' if args.kind == 'det' else 'pred/',
                                                        not args.no_save_pred), ('predictions.json', True)) if on)
          + ')' + (f'; skipped {len(res["skipped"])}: ' + ', '.join(s['input'] for s in res['skipped'])
                   if res['skipped'] else ''))
    return out


def _stop(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


if __name__ == '__main__':
    import signal
    signal.signal(signal.SIGTERM, _stop)  # a killed job (e.g. a scheduler's time limit) also keeps what was done
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
