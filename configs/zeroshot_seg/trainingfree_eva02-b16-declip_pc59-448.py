# DeCLIP EVA02-CLIP-B/16 (csa dense features), the paper's Table 5 setting: training-free evaluation on PASCAL-Context-59.
_base_ = ['./_base_/default_runtime.py', './_base_/model_declip_eva02_b16.py', './_base_/ds_context59.py']
model = dict(class_names='cls_context59', logit_scale=40.0, prob_thd=0.0)
