# Official script setting (scripts/dist_DeCLIP_eva_vitL14_336_coco.sh): EVA02-CLIP-L/14-336 + DINOv2-L,
# det 560 (40x40 tokens) / VFM 560, teacher crops 336, alpha 0.95. The official script runs 4 GPUs x 2 = 8
# (its own comment says 16); for the total batch 16 of the paper use 8 GPUs x 2.
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']

clip_checkpoint = 'checkpoints/EVA02_CLIP_L_336_psz14_s6B.pt'
vfm_checkpoint = 'checkpoints/dinov2_vitl14_reg4_pretrain.pth'
det_size = 560
batch_size = 2

model = dict(
    student=dict(model_name='EVA02-L-14-336', checkpoint=clip_checkpoint, dense_mode='qq'),
    vfm=dict(name='dinov2_l', checkpoint=vfm_checkpoint),
    alpha=0.95,
    max_nonfinite_steps=10)  # NaN/Inf-loss steps skipped before the run stops
train_pipeline = [
    dict(type='DeCLIPGridCrops', det_size=det_size, student_patch=14, vfm_patch=14, crop_size=336,
         max_crops=20, grid='official', seed=0),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
