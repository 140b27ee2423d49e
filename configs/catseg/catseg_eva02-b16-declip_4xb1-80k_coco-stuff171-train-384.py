# CAT-Seg with a DeCLIP EVA02-CLIP-B/16 encoder at 384 (DeCLIP Table 4), trained on COCO-Stuff-171.
# CLIP / DeCLIP weights: clip_checkpoint in _base_/models/ (a local file; the text tower needs a full CLIP / DeCLIP
# checkpoint), or --cfg-options model.backbone.checkpoint=... (the text encoder reads the same file)
# DeCLIP's rule: visual Q/V projection weights + the whole fused text in_proj (Q, K, V), lr x0.01.
# Validation at the end on ADE-150; evaluation configs: catseg_vitb16_declip_<bench>.py.
_base_ = ['./_base_/default_runtime.py', './_base_/schedule_80k.py', './_base_/coco_stuff171_train.py',
          './_base_/models/catseg_vitb16_declip.py', './_base_/eval_ade150.py']
model = dict(test_class_names='catseg_ade150')
