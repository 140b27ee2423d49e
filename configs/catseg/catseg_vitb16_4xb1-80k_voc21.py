# Evaluate a CAT-Seg ViT-B/16 checkpoint (trained with catseg_vitb16_4xb1-80k_coco-stuff171-train-384.py) on voc21:  python tools/test.py configs/catseg/catseg_vitb16_4xb1-80k_voc21.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitb16_openai.py', './_base_/eval_voc21.py']
model = dict(test_class_names='catseg_voc20b', background_collapse=dict(num_foreground=20, background_first=True))
