# Paper-style setting for EVA02-L/14-336 + DINOv2-L: context weight 0.25, grid m, n uniform in [1, 6],
# total batch 16 (8 GPUs x 2). det stays 560 (the paper's L resolution is not stated separately).
_base_ = ['./declip_eva02-l14-336_dinov2-l_4xb2-6e_coco-560.py']

model = dict(context_weight=0.25)
train_pipeline = [
    dict(type='DeCLIPGridCrops', det_size=560, student_patch=14, vfm_patch=14, crop_size=336,
         max_crops=20, grid='paper', seed=0),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
