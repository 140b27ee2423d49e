# CorrCLIP, MetaCLIP ViT-B/16 + DINO ViT-B/8 + SAM 2 region masks: training-free evaluation on PASCAL VOC-20, CorrCLIP's protocol (short side 336, window 336 / stride 112).
# Masks: data/region_masks/voc/<image stem>.npz (CorrCLIP's region_masks.zip, or tools/gen_masks.py --generator sam2).
_base_ = ['./_base_/default_runtime.py', './_base_/model_corrclip_vitb16-metaclip_dino-b8.py', './_base_/ds_voc20_proxyclip-336.py']
model = dict(class_names='corrclip_cls_voc20', logit_scale=40.0, prob_thd=0.0,
             proxy=dict(mask_source=dict(type='MaskFileSource', mask_dir='data/region_masks/voc')))
