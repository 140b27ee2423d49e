# Evaluate a CAT-Seg EVA02-L/14-336 DeCLIP checkpoint (trained with catseg_eva02-l14-336-declip_4xb1-80k_coco-stuff171-train-336.py) on ade847:  python tools/test.py configs/catseg/catseg_eva02-l14-336-declip_4xb1-80k_ade847.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitl14_declip.py', './_base_/eval_ade847.py']
model = dict(test_class_names='catseg_ade847')
