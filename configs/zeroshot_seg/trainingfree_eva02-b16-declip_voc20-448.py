# DeCLIP EVA02-CLIP-B/16 (csa dense features), the paper's Table 5 setting: training-free evaluation on PASCAL VOC-20 (no background).
_base_ = ['./_base_/default_runtime.py', './_base_/model_declip_eva02_b16.py', './_base_/ds_voc20.py']
model = dict(class_names='cls_voc20', logit_scale=40.0, prob_thd=0.0)
