# CAT-Seg release checkpoint model_large.pth (CAT-Seg (L), OpenAI CLIP vitl14-336, COCO-Stuff-171, 80k iterations, 4 GPUs x 1
# image), evaluated on ADE-847: should reproduce 16.0 mIoU.  Settings equal CAT-Seg's configs/vitl_336.yaml with
# the eval.sh overrides (sliding window, class-aggregation pooling [1, 1]).
#   python tools/model_converters/catseg_to_declip_mm.py checkpoints/model_large.pth checkpoints/catseg_model_large_declip-mm.pth
#   python tools/test.py configs/catseg/catseg_vitl14-336-release_4xb1-80k_ade847.py checkpoints/catseg_model_large_declip-mm.pth
_base_ = './catseg_vitl14-336_4xb1-80k_ade847.py'
model = dict(backbone=dict(checkpoint=None), text_encoder=dict(checkpoint=None))  # both come from the checkpoint
