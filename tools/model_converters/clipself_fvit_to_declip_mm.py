"""Convert a CLIPSelf F-ViT detector (mmdet 2.x ``.pth`` from the CLIPSelf release) to declip_mm's ``FViT``.

    python tools/model_converters/clipself_fvit_to_declip_mm.py SRC DST [--config CONFIG] [--reverse]

e.g. ``fvit_eva_vitb16_ovcoco_clipself_proposals.pth`` -> ``fvit_..._declip-mm.pth``, then
``python tools/test.py configs/fvit/<the checkpoint's config>.py DST``.  With ``--config`` the converted weights
are checked against the model the config builds (every weight present, every shape equal).

Key mapping (CLIPSelf -> declip_mm):
    backbone.visual.*                 -> backbone.visual.trunk.*  (EVA-CLIP -> timm names; RoPE buffers dropped)
    backbone.interpolate1.{0,1,3}.*   -> neck.necks.0.upsample_4x.{0,1,3}.*   (mmseg Feature2Pyramid)
    backbone.interpolate2.0.*         -> neck.necks.0.upsample_2x.0.*
    neck.*                            -> neck.necks.1.*           (FPN)
    rpn_head.*, roi_head.mask_head.*  -> unchanged
    roi_head.bbox_head.detect_temperature -> roi_head.bbox_head.fc_cls.logit_scale
    roi_head.bbox_head.{shared_convs,shared_fcs,cls_fcs,reg_fcs,fc_reg}.* -> unchanged
Dropped: the EVA RoPE buffers (``rope.freqs_cos/sin``, the per-size ``freqs_cos_N`` caches and the ``rope.flag``
counter: CLIPSelf's ``VisionRotaryEmbeddingFast`` registers them non-persistent, but mmcv 1.x's ``save_checkpoint``
saves every buffer, so each file holds one ``flag`` for the shared module plus one per block),
``bbox_head.fc_cls.{weight,bias}`` (built by mmdet's ConvFCBBoxHead but never used by F-ViT, which
classifies against text embeddings) and ``bbox_head.all_embeddings`` (the text embeddings; declip_mm reads them
from the config's ``text_embeddings`` file -- ``--embeddings-out`` writes them as such a file when ``--class-names``
gives the original class list, e.g. CLIPSelf's ``datasets/mscoco_65_classes.json``).
"""
import argparse
import json
from collections import OrderedDict

import torch

from _common import (ConversionError, convert_keys, eva_rename_rule, load_source, print_summary, save, shapes_of,
                     unwrap)


_visual_to_ours = eva_rename_rule('backbone.', 'visual.', to_release=False)
_visual_to_theirs = eva_rename_rule('backbone.', 'visual.trunk.', to_release=True)


RULES = (
    (r'backbone\.visual\.(.*)', _visual_to_ours),
    (r'backbone\.interpolate1\.([013])\.(.*)', r'neck.necks.0.upsample_4x.\1.\2'),
    (r'backbone\.interpolate2\.0\.(.*)', r'neck.necks.0.upsample_2x.0.\1'),
    (r'neck\.(.*)', r'neck.necks.1.\1'),
    (r'rpn_head\.(rpn_conv\.\d+\.(?:conv|bn)\.\w+|rpn_conv\.(?:weight|bias)|rpn_cls\.\w+|rpn_reg\.\w+)',
     r'rpn_head.\1'),
    (r'roi_head\.bbox_head\.detect_temperature', r'roi_head.bbox_head.fc_cls.logit_scale'),
    (r'roi_head\.bbox_head\.((?:shared_convs|shared_fcs|cls_fcs|reg_fcs|cls_convs|reg_convs)\.\d+\..+|fc_reg\.\w+)',
     r'roi_head.bbox_head.\1'),
    (r'roi_head\.mask_head\.(.*)', r'roi_head.mask_head.\1'),
)
DROPS = (
    (r'backbone\.visual\.(?:.*\.)?rope\.freqs_(?:cos|sin)(?:_\d+)?',
     'EVA RoPE buffer (recomputed for the input grid)'),
    (r'backbone\.visual\.(?:.*\.)?rope\.flag',
     'EVA RoPE counter of cached grids (a non-persistent buffer that mmcv 1.x saves)'),
    (r'roi_head\.bbox_head\.fc_cls\.(?:weight|bias)',
     'unused by F-ViT (mmdet builds it; classification uses the text embeddings)'),
    (r'roi_head\.bbox_head\.all_embeddings',
     'text embeddings: given by the config (text_embeddings); see --embeddings-out'),
)
REVERSE_RULES = (
    (r'backbone\.visual\.trunk\.(.*)', _visual_to_theirs),
    (r'neck\.necks\.0\.upsample_4x\.([013])\.(.*)', r'backbone.interpolate1.\1.\2'),
    (r'neck\.necks\.0\.upsample_2x\.0\.(.*)', r'backbone.interpolate2.0.\1'),
    (r'neck\.necks\.1\.(.*)', r'neck.\1'),
    (r'rpn_head\.(.*)', r'rpn_head.\1'),
    (r'roi_head\.bbox_head\.fc_cls\.logit_scale', r'roi_head.bbox_head.detect_temperature'),
    (r'roi_head\.bbox_head\.(.*)', r'roi_head.bbox_head.\1'),
    (r'roi_head\.mask_head\.(.*)', r'roi_head.mask_head.\1'),
)
REVERSE_DROPS = ((r'backbone\.visual\.trunk\.(?:.*\.)?rope\..*', 'timm RoPE buffer'), )


def convert(sd, target_shapes=None):
    """CLIPSelf F-ViT state dict -> (declip_mm FViT state dict, report)."""
    out, report = convert_keys(sd, RULES, DROPS, 'CLIPSelf F-ViT -> declip_mm FViT', target_shapes)
    t = out.get('roi_head.bbox_head.fc_cls.logit_scale')
    if t is not None and t.dim() != 0:
        raise ConversionError(f'detect_temperature has shape {tuple(t.shape)}; expected a scalar')
    return out, report


def revert(sd):
    """declip_mm FViT state dict -> (CLIPSelf F-ViT layout, report).  RoPE buffers, ``fc_cls`` and
    ``all_embeddings`` are not produced (the original code rebuilds them when it loads non-strictly, as mmdet's
    test tool does)."""
    return convert_keys(sd, REVERSE_RULES, REVERSE_DROPS, 'declip_mm FViT -> CLIPSelf F-ViT')


def embeddings_from(sd, class_names):
    """``bbox_head.all_embeddings`` (D, K+1) + the original class list -> {name: (D,)} incl. 'background'."""
    emb = sd['roi_head.bbox_head.all_embeddings']
    names = list(class_names) + ['background']
    if emb.shape[1] != len(names):
        raise ConversionError(f'all_embeddings has {emb.shape[1]} columns but {len(class_names)} class names + '
                              'background were given')
    return OrderedDict((n, emb[:, i].float().clone()) for i, n in enumerate(names))


def build_target_shapes(config: str):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import declip_mm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(config)
    cfg.model.backbone.checkpoint = None
    if 'text_embeddings' in cfg.model.roi_head.bbox_head:
        cfg.model.roi_head.bbox_head.text_embeddings = None  # shapes only
    return shapes_of(MODELS.build(cfg.model))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--config', help='declip_mm config of this checkpoint: check every weight and shape')
    p.add_argument('--reverse', action='store_true', help='declip_mm FViT checkpoint -> CLIPSelf layout')
    p.add_argument('--class-names', help='the original all_classes json (for --embeddings-out)')
    p.add_argument('--embeddings-out', help='write the stored text embeddings as a {name: vector} .pt file')
    args = p.parse_args()
    obj = load_source(args.src)
    sd = unwrap(obj)
    if args.reverse:
        out, report = revert(sd)
        save({'state_dict': out, 'meta': {'converted_from': 'declip_mm'}}, args.dst)
    else:
        shapes = build_target_shapes(args.config) if args.config else None
        out, report = convert(sd, shapes)
        if args.embeddings_out:
            if not args.class_names:
                raise SystemExit('--embeddings-out needs --class-names (the original all_classes json)')
            with open(args.class_names) as f:
                torch.save(embeddings_from(sd, json.load(f)), args.embeddings_out)
            report.added[args.embeddings_out] = 'text embeddings written'
        save({'state_dict': out, 'meta': {'converted_from': 'CLIPSelf F-ViT (mmdet 2.x)'}}, args.dst)
    print_summary(report)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()
