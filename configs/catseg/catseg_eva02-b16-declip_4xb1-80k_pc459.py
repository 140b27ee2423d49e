# Evaluate a CAT-Seg EVA02-B/16 DeCLIP checkpoint (trained with catseg_eva02-b16-declip_4xb1-80k_coco-stuff171-train-384.py) on pc459:  python tools/test.py configs/catseg/catseg_eva02-b16-declip_4xb1-80k_pc459.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitb16_declip.py', './_base_/eval_pc459.py']
model = dict(test_class_names='catseg_pc459')
