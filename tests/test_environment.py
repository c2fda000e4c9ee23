"""The environment tools/setup_env.sh makes: the whole stack imports, with compiled mmcv ops."""
import torch


def test_stack_imports_with_compiled_ops():
    import mmcv
    import mmdet
    import mmengine
    import mmpretrain
    import mmseg
    from mmcv.ops import RoIAlign, nms
    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    assert (torch.__version__.split('+')[0], mmcv.__version__, mmengine.__version__) == \
        ('2.14.1', '2.1.0', '0.10.7')
    assert (mmpretrain.__version__, mmdet.__version__, mmseg.__version__) == ('1.2.0', '3.3.0', '1.2.2')
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feat = torch.arange(16.).view(1, 1, 4, 4)
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=1, aligned=False)(
        feat, torch.tensor([[0., 0., 0., 3., 3.]]))
    assert out.shape == (1, 1, 2, 2)


def test_registry_scopes():
    import mmkd  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmkd.registry import DATASETS, MODELS, TRANSFORMS
    assert MODELS.get('ClassificationDistiller') is not None
    assert MODELS.get('ImageClassifier') is not None  # mmpretrain's, through the parent
    assert TRANSFORMS.get('PackInputs') is not None and DATASETS.get('FashionMNIST') is not None
    assert MODELS.parent.scope == 'mmpretrain' and MODELS.scope == 'mmkd'
    # mmdet / mmseg configs can import mmkd and still reach their own types
    import mmdet.models  # noqa: F401
    from mmdet.registry import MODELS as DET
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert DET.get('MaskRCNN') is not None


def test_fashion_mnist_splits_are_the_real_ones():
    import os.path as osp

    import pytest
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import mmkd  # noqa: F401
    from mmkd.registry import DATASETS
    from conftest import FMNIST, ROOT
    if not osp.isfile(osp.join(FMNIST, 't10k-images-idx3-ubyte')):
        pytest.skip('Fashion-MNIST not prepared')
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/fashion_mnist.py'))
    with DefaultScope.overwrite_default_scope('mmkd'):
        train = DATASETS.build(cfg.train_dataloader.dataset)
        test = DATASETS.build(cfg.test_dataloader.dataset)
    assert (len(train), len(test)) == (60000, 10000)  # the test split is not the training set
