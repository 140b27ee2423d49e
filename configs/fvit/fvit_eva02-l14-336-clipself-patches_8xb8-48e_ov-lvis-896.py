# CLIPSelf release detector fvit_eva_vitl14_ovlvis_clipself_patches.pth (F-ViT, mmdet 2.x), evaluated with declip_mm.
# Settings equal its original config CLIPSelf/F-ViT/configs/ov_lvis/fvit_vitl14_upsample_fpn_bs64_4x_ovlvis_eva_clipself_patches.py (sizes, alpha/beta, temperatures, test
# thresholds and max detections come from the base config); it should reproduce 34.9 mask AP on rare classes (lvis/segm_APr).
# Text embeddings: CLIPSelf's own file (CLIPSelf/F-ViT/datasets/embeddings/lvis_with_background_evaclip_vitl14x336.pt).
#   python tools/model_converters/clipself_fvit_to_declip_mm.py checkpoints/fvit_eva_vitl14_ovlvis_clipself_patches.pth checkpoints/fvit_eva_vitl14_ovlvis_clipself_patches_declip-mm.pth
#   python tools/test.py configs/fvit/fvit_eva02-l14-336-clipself-patches_8xb8-48e_ov-lvis-896.py checkpoints/fvit_eva_vitl14_ovlvis_clipself_patches_declip-mm.pth
_base_ = './fvit_eva02-l14-336_8xb8-48e_ov-lvis-896.py'
clipself_embeddings = 'data/text_embeddings/clipself/lvis_with_background_evaclip_vitl14x336.pt'
model = dict(
    backbone=dict(checkpoint=None),  # the converted detector holds the (CLIPSelf-fine-tuned) backbone
    roi_head=dict(bbox_head=dict(text_embeddings=clipself_embeddings)))
