# Evaluate a catseg_vitb16_declip checkpoint on ade150:  python tools/test.py configs/catseg/catseg_vitb16_declip_ade150.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitb16_declip.py', './_base_/eval_ade150.py']
model = dict(test_class_names='catseg_ade150')
