# CAT-Seg release checkpoint model_base.pth (CAT-Seg (B), OpenAI CLIP vitb16-384, COCO-Stuff-171, 80k iterations, 4 GPUs x 1
# image), evaluated on PC-459: should reproduce 19.0 mIoU.  Settings equal CAT-Seg's configs/vitb_384.yaml with
# the eval.sh overrides (sliding window, class-aggregation pooling [1, 1]).
#   python tools/model_converters/catseg_to_declip_mm.py checkpoints/model_base.pth checkpoints/catseg_model_base_declip-mm.pth
#   python tools/test.py configs/catseg/catseg_vitb16-384-release_4xb1-80k_pc459.py checkpoints/catseg_model_base_declip-mm.pth
_base_ = './catseg_vitb16_4xb1-80k_pc459.py'
model = dict(backbone=dict(checkpoint=None), text_encoder=dict(checkpoint=None))  # both come from the checkpoint
