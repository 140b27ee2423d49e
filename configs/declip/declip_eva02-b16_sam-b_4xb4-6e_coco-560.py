# Table 6 VFM variant: EVA02-B/16 student with the sam_b teacher (VFM image = (560 // 16) * 16 px).
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']
model = dict(vfm=dict(name='sam_b', checkpoint='checkpoints/sam_vit_b_01ec64.pth'))
train_pipeline = [
    dict(type='DeCLIPGridCrops', det_size=560, student_patch=16, vfm_patch=16, crop_size=224, max_crops=20,
         grid='official', seed=0),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
