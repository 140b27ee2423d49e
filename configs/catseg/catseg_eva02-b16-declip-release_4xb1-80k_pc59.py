# DeCLIP's released CAT-Seg model CATSeg_DeCLIP_EVA-B_DINOv2-B_csa_0.05_2.0 (EVA02-CLIP-B/16 at 384, dense mode csa,
# COCO-Stuff-171, 80k iterations), evaluated on PC-59: the DeCLIP authors report 60.89 mIoU for it (paper Table 4
# gives the same model's row).  DeCLIP's CAT-Seg code is unpublished; the converter assumes the EVA-CLIP release
# naming under sem_seg_head.predictor.clip_model (see docs/model_zoo.md).
#   python tools/model_converters/catseg_to_declip_mm.py checkpoints/CATSeg_DeCLIP_EVA-B_DINOv2-B_csa_0.05_2.0.pth \
#       checkpoints/catseg_declip_eva-b_declip-mm.pth --config configs/catseg/catseg_eva02-b16-declip-release_4xb1-80k_pc59.py
#   python tools/test.py configs/catseg/catseg_eva02-b16-declip-release_4xb1-80k_pc59.py checkpoints/catseg_declip_eva-b_declip-mm.pth
_base_ = './catseg_eva02-b16-declip_4xb1-80k_pc59.py'
model = dict(backbone=dict(checkpoint=None), text_encoder=dict(checkpoint=None))  # both come from the checkpoint
