# DeCLIP EVA02-CLIP-B/16 training-free on PASCAL VOC-21 (the paper's Table 5 setting) + PAMR on the final logits
# (NACLIP's refinement: 10 steps, dilations 8 / 16, guided by the input image).  Needs nothing beyond the base config.
_base_ = ['./trainingfree_eva02-b16-declip_voc21-448.py']
model = dict(postprocess=[dict(type='PAMR', num_iter=10, dilations=(8, 16))])
custom_hooks = [dict(type='SegPostProcessReportHook')]
