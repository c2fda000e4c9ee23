"""The ``mmkd`` scope: one registry per kind, each a child of mmpretrain's.

A config with ``default_scope='mmkd'`` can therefore name any mmkd type *and* any mmpretrain
(and, through mmpretrain, MMEngine) type; lookups fall back from child to parent.
"""
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

_SCOPE = 'mmkd'


def _child(name: str, parent: Registry, locations=()) -> Registry:
    # A child does not trigger its parent's lazy imports, so it inherits their locations:
    # looking up e.g. 'PackInputs' in mmkd's TRANSFORMS then imports mmpretrain.datasets.
    return Registry(name, parent=parent, scope=_SCOPE,
                    locations=[*parent._locations, *locations])


RUNNERS = _child('runner', mmpretrain_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child('runner constructor', mmpretrain_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child('loop', mmpretrain_registry.LOOPS, ['mmkd.engine'])
HOOKS = _child('hook', mmpretrain_registry.HOOKS, ['mmkd.engine'])
LOG_PROCESSORS = _child('log processor', mmpretrain_registry.LOG_PROCESSORS)
OPTIMIZERS = _child('optimizer', mmpretrain_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child('optim wrapper', mmpretrain_registry.OPTIM_WRAPPERS, ['mmkd.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    mmpretrain_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child('parameter scheduler', mmpretrain_registry.PARAM_SCHEDULERS)
DATASETS = _child('dataset', mmpretrain_registry.DATASETS, ['mmkd.datasets'])
DATA_SAMPLERS = _child('data sampler', mmpretrain_registry.DATA_SAMPLERS, ['mmkd.datasets'])
TRANSFORMS = _child('transform', mmpretrain_registry.TRANSFORMS)
MODELS = _child('model', mmpretrain_registry.MODELS, ['mmkd.models'])
MODEL_WRAPPERS = _child('model_wrapper', mmpretrain_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child('weight initializer', mmpretrain_registry.WEIGHT_INITIALIZERS)
BATCH_AUGMENTS = _child('batch augment', mmpretrain_registry.BATCH_AUGMENTS)
TASK_UTILS = _child('task util', mmpretrain_registry.TASK_UTILS)
METRICS = _child('metric', mmpretrain_registry.METRICS, ['mmkd.evaluation'])
EVALUATORS = _child('evaluator', mmpretrain_registry.EVALUATORS)
VISUALIZERS = _child('visualizer', mmpretrain_registry.VISUALIZERS)
VISBACKENDS = _child('vis_backend', mmpretrain_registry.VISBACKENDS)
