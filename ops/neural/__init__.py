"""Neural-network layers on numpy arrays, with forward and backward passes.

Spatial tensors are NHWC, C-contiguous, float32 (float64 works too); 1-D sequences are
images of height 1. Each ``*_forward`` returns its output and a cache that the matching
``*_backward`` turns, with the output gradient, into the input and parameter gradients;
caches hold references to the arrays of the forward pass, which must not be modified in
place before the backward pass. A process that trains should call
:func:`retain_freed_memory` once: without it, small networks spend about half of each
step faulting in memory that malloc gave back to the kernel at the previous one.
"""
from ops.neural.activation import relu_backward, relu_forward
from ops.neural.conv import conv_backward, conv_forward, depthwise_backward, depthwise_forward
from ops.neural.dense import dense_backward, dense_forward
from ops.neural.init import he_normal
from ops.neural.loss import softmax_cross_entropy
from ops.neural.memory import retain_freed_memory
from ops.neural.norm import batchnorm_backward, batchnorm_forward, bn_relu_backward, bn_relu_forward
from ops.neural.optim import adam_step, learning_rate, sgd_step
from ops.neural.pool import max_pool_same_forward, pool_backward, pool_forward
from ops.neural.shape import (
                              add_backward,
                              add_forward,
                              concat_backward,
                              concat_forward,
                              gap_backward,
                              gap_forward,
                              slice_backward,
                              slice_forward,
)

__all__ = ["adam_step", "add_backward", "add_forward", "batchnorm_backward", "batchnorm_forward",
           "bn_relu_backward", "bn_relu_forward", "concat_backward", "concat_forward",
           "conv_backward", "conv_forward", "dense_backward", "dense_forward",
           "depthwise_backward", "depthwise_forward", "gap_backward", "gap_forward",
           "he_normal", "learning_rate", "max_pool_same_forward", "pool_backward",
           "pool_forward", "relu_backward", "relu_forward", "retain_freed_memory", "sgd_step",
           "slice_backward", "slice_forward", "softmax_cross_entropy"]
