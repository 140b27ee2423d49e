# CAT-Seg with OpenAI CLIP ViT-B/16 at 384 (the official CVPR-2024 setting), trained on COCO-Stuff-171.
# CLIP / DeCLIP weights: clip_checkpoint in _base_/models/ (a local file; the text tower needs a full CLIP / DeCLIP
# checkpoint), or --cfg-options model.backbone.checkpoint=... (the text encoder reads the same file)
# Trainable CLIP parameters: the Q and V projection weights of every block of both towers (lr x0.01).
# Validation at the end on ADE-150; evaluation configs: catseg_vitb16_openai_<bench>.py.
_base_ = ['./_base_/default_runtime.py', './_base_/schedule_80k.py', './_base_/coco_stuff171_train.py',
          './_base_/models/catseg_vitb16_openai.py', './_base_/eval_ade150.py']
model = dict(test_class_names='catseg_ade150')
