# Table 1, row 1: self-distillation only (CLIPSelf): content loss on the undecoupled dense feature
# (last block without attention, F-ViT / CLIPSelf style), no VFM.
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']
model = dict(distill_mode='self', student=dict(dense_mode='maskclip'), vfm=None, context_weight=0.0)
train_pipeline = [
    dict(type='DeCLIPGridCrops', det_size=560, student_patch=16, vfm_patch=None, crop_size=224, max_crops=20,
         grid='official', seed=0),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
