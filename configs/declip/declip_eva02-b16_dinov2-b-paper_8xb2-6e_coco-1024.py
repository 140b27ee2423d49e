# Paper setting for EVA02-B/16 + DINOv2-B: det 1024 (DINOv2 896, 64x64 tokens), context weight 0.25,
# grid m, n uniform in [1, 6], total batch 16 (8 GPUs x 2).
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']

det_size = 1024
model = dict(context_weight=0.25)
train_pipeline = [
    dict(type='DeCLIPGridCrops', det_size=det_size, student_patch=16, vfm_patch=14, crop_size=224,
         max_crops=20, grid='paper', seed=0),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
