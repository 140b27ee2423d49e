# Evaluate a catseg_vitl14_openai checkpoint on ade847:  python tools/test.py configs/catseg/catseg_vitl14_openai_ade847.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitl14_openai.py', './_base_/eval_ade847.py']
model = dict(test_class_names='catseg_ade847')
