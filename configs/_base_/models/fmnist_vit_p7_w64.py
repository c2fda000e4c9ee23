# The results table's ViT student for 28x28 grey images: patch 7 -> 4x4 tokens, width 64,
# 4 blocks, 4 heads (0.2M parameters).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='VisionTransformer',
                  arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128),
                  img_size=28, patch_size=7, in_channels=1, drop_rate=0.0, drop_path_rate=0.0),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
