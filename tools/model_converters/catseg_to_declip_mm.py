"""Convert a CAT-Seg detectron2 ``model_final.pth`` (CAT-Seg release, or a DeCLIP-encoder CAT-Seg) to declip_mm's
``CATSeg``.

    python tools/model_converters/catseg_to_declip_mm.py SRC DST [--config CONFIG] [--reverse]

Key mapping (detectron2 CAT-Seg -> declip_mm):
    sem_seg_head.predictor.transformer.*           -> decode_head.*           (CATSegHead: same module names)
    upsample1.*, upsample2.*                       -> decode_head.upsample1.*, decode_head.upsample2.*
    sem_seg_head.predictor.clip_model.visual.*     -> backbone.visual.*       (OpenAI: q/k/v_proj_weight + packed
                                                                                in_proj_bias kept as they are, so
                                                                                the fine-tuned Q and V land on the
                                                                                split_qkv backbone unchanged;
                                                                                EVA: EVA-CLIP -> timm names)
    sem_seg_head.predictor.clip_model.{transformer,token_embedding,positional_embedding,ln_final,text_projection,
        logit_scale}                               -> text_encoder.clip.*     (EVA: clip_model.text.*)
Dropped: EVA RoPE buffers (recomputed).  VPT prompt tokens (``prompt_tokens``, PROMPT_LENGTH > 0) have no
counterpart in declip_mm's backbone and are an error.  The released CAT-Seg models use PROMPT_DEPTH 0.
The EVA-CLIP layout follows the EVA-CLIP release naming (DeCLIP's own CAT-Seg integration is not published).
With ``--config`` every converted weight is checked against the model the config builds.
"""
import argparse
import re

from _common import (ConversionError, convert_keys, eva_rename_rule, load_source, print_summary, save, shapes_of,
                     unwrap)

P = r'sem_seg_head\.predictor\.'
TEXT_TOP = r'(?:transformer\.|token_embedding\.|positional_embedding$|ln_final\.|text_projection|logit_scale$)'


_eva_visual = eva_rename_rule('backbone.', 'visual.', to_release=False)


def _text_to_ours(text_prefix):
    def fn(m, v):
        return [(f'text_encoder.clip.{text_prefix}{m.group(1)}', v)]
    return fn


def rules_for(sd, text_prefix: str = ''):
    """Rules for this checkpoint's CLIP family (OpenAI names or EVA-CLIP release names)."""
    eva = any(re.match(P + r'clip_model\.visual\.blocks\.', k) for k in sd)
    visual = (P + r'clip_model\.visual\.(.*)', _eva_visual if eva else r'backbone.visual.\1')
    if eva:  # EVA-CLIP: text tower under ``text.``, logit_scale top-level (``text.logit_scale`` in old files)
        text = (P + r'clip_model\.(?:text\.)?(logit_scale)|' + P + r'clip_model\.text\.(.*)',
                lambda m, v: [(f'text_encoder.clip.{"" if m.group(1) else text_prefix}{m.group(1) or m.group(2)}',
                               v)])
    else:
        text = (P + r'clip_model\.(' + TEXT_TOP + r'.*)', _text_to_ours(''))
    return (
        (P + r'transformer\.(.*)', r'decode_head.\1'),
        (r'(upsample[12])\.(weight|bias)', r'decode_head.\1.\2'),
        visual,
        text,
    )


DROPS = (
    (P + r'clip_model\.visual\.(?:.*\.)?rope\.freqs_(?:cos|sin)(?:_\d+)?',
     'EVA RoPE buffer (recomputed for the input grid)'),
)


def convert(sd, target_shapes=None, text_prefix: str = None):
    """detectron2 CAT-Seg state dict -> (declip_mm CATSeg state dict, report)."""
    prompts = [k for k in sd if 'prompt_tokens' in k]
    if prompts:
        raise ConversionError(f'{prompts}: visual prompt tokens (CAT-Seg PROMPT_LENGTH > 0) are not supported by '
                              "declip_mm's backbone; only PROMPT_DEPTH 0 models (the released ones) convert")
    if text_prefix is None:  # EVA text tower: open_clip nests it under ``text.`` for CustomTextCLIP models
        text_prefix = 'text.' if target_shapes and any(k.startswith('text_encoder.clip.text.')
                                                      for k in target_shapes) else ''
    return convert_keys(sd, rules_for(sd, text_prefix), DROPS, 'CAT-Seg (detectron2) -> declip_mm CATSeg',
                        target_shapes)


_visual_back = eva_rename_rule('sem_seg_head.predictor.clip_model.', 'visual.trunk.', to_release=True)


REVERSE_RULES = (
    (r'text_encoder\.clip\.logit_scale', r'sem_seg_head.predictor.clip_model.logit_scale'),
    (r'decode_head\.(upsample[12])\.(weight|bias)', r'\1.\2'),
    (r'decode_head\.(.*)', r'sem_seg_head.predictor.transformer.\1'),
    (r'backbone\.visual\.trunk\.(.*)', _visual_back),
    (r'backbone\.visual\.(.*)', r'sem_seg_head.predictor.clip_model.visual.\1'),
    (r'text_encoder\.clip\.text\.(.*)', r'sem_seg_head.predictor.clip_model.text.\1'),
    (r'text_encoder\.clip\.(.*)', r'sem_seg_head.predictor.clip_model.\1'),
)
REVERSE_DROPS = ((r'backbone\.visual\.trunk\.(?:.*\.)?rope\..*', 'timm RoPE buffer'), )


def revert(sd, eva_text: bool = False):
    """declip_mm CATSeg state dict -> (detectron2 CAT-Seg layout, report)."""
    rules = list(REVERSE_RULES)
    if eva_text:  # EVA-CLIP keeps its text tower under ``text.``
        rules[-1] = (r'text_encoder\.clip\.(.*)', r'sem_seg_head.predictor.clip_model.text.\1')
    return convert_keys(sd, rules, REVERSE_DROPS, 'declip_mm CATSeg -> CAT-Seg (detectron2)')


def build_target_shapes(config: str):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    import declip_mm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(config)
    cfg.model.backbone.checkpoint = None
    cfg.model.text_encoder.checkpoint = None
    return shapes_of(MODELS.build(cfg.model))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--config', help='declip_mm config of this checkpoint: check every weight and shape')
    p.add_argument('--reverse', action='store_true', help='declip_mm CATSeg checkpoint -> detectron2 layout')
    args = p.parse_args()
    sd = unwrap(load_source(args.src))
    if args.reverse:
        out, report = revert(sd, eva_text=any(k.startswith('backbone.visual.trunk.') for k in sd))
        save({'model': out, '__author__': 'declip_mm'}, args.dst)
    else:
        out, report = convert(sd, build_target_shapes(args.config) if args.config else None)
        save({'state_dict': out, 'meta': {'converted_from': 'CAT-Seg (detectron2)'}}, args.dst)
    print_summary(report)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()
