# Evaluate a CAT-Seg ViT-B/16 checkpoint (trained with catseg_vitb16_4xb1-80k_coco-stuff171-train-384.py) on ade847:  python tools/test.py configs/catseg/catseg_vitb16_4xb1-80k_ade847.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitb16_openai.py', './_base_/eval_ade847.py']
model = dict(test_class_names='catseg_ade847')
