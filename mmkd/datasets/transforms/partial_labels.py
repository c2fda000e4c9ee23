"""A labelled fraction of a training set: the semi-supervised regime of distillation, where the
teacher sees every image and the labels exist for some of them."""
from typing import Optional

from mmcv.transforms import BaseTransform

from mmkd.registry import TRANSFORMS

#: the label of an unlabelled sample: the ``ignore_index`` of ``F.cross_entropy``, so that
#: mmpretrain's CrossEntropyLoss gives it zero loss (a batch's CE is the sum over its labelled
#: samples divided by the batch size) and the distiller knows it has no label
UNLABELLED = -100


@TRANSFORMS.register_module()
class PartialLabels(BaseTransform):
    """Keeps the label of the first ``num_labelled`` samples of the dataset (by ``sample_idx``,
    the dataset index MMEngine's datasets give every sample) and hides the others' labels
    (``gt_label = UNLABELLED``). Which samples are labelled depends on the index only, so it
    is the same set in every epoch, worker and seed. Put it before ``PackInputs``.

    Args:
        num_labelled (int, optional): samples that keep their label; ``None``: all.
    """

    def __init__(self, num_labelled: Optional[int] = None):
        if num_labelled is not None and num_labelled < 1:
            raise ValueError(f'PartialLabels: num_labelled={num_labelled}; give at least 1 '
                             '(or None: every sample keeps its label)')
        self.num_labelled = num_labelled

    def transform(self, results: dict) -> dict:
        if self.num_labelled is None:
            return results
        if 'sample_idx' not in results:
            raise KeyError('PartialLabels needs the sample index (results["sample_idx"], which '
                           'MMEngine\'s BaseDataset.get_data_info sets); this dataset gives '
                           f'only {sorted(results)}')
        if results['sample_idx'] >= self.num_labelled:
            results['gt_label'] = UNLABELLED
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_labelled={self.num_labelled})'
