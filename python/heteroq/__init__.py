# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq: QKeras-exact quantization-aware training for PyTorch, with a C++ core.

Example usage::

    import torch
    import heteroq

    q = heteroq.quantized_bits(6, 0, alpha=1)          # QKeras's arguments and numerics
    y = q(torch.randn(4))                               # values on the 6-bit grid
    layer = heteroq.nn.QDense(16, 64, kernel_quantizer="quantized_bits(6,0,alpha=1)")
"""
import torch  # noqa: F401  (LibTorch must be loaded before the extension)

from . import _C  # registers torch.ops.heteroq.*
from . import autoq, config, cost, datasets, deploy, export, hgq, nn, ops, regularizers, serialize
from .config import from_config, to_config
from .convert import model_quantize
from .cost import print_qstats
from .serialize import load_quantized_weights, save_quantized_weights
from .quantizers import (Quantizer, bernoulli, binary, get_quantizer, quantized_bits,
                         quantized_hswish, quantized_po2, quantized_relu, quantized_relu_po2,
                         quantized_sigmoid, quantized_tanh, quantized_ulaw, qkeras_weight_quantizer,
                         stochastic_binary, stochastic_ternary, ternary)

__version__ = _C.__version__

__all__ = [
    "Quantizer",
    "autoq",
    "bernoulli",
    "binary",
    "config",
    "cost",
    "datasets",
    "deploy",
    "export",
    "from_config",
    "get_quantizer",
    "load_quantized_weights",
    "model_quantize",
    "nn",
    "ops",
    "print_qstats",
    "quantized_bits",
    "quantized_hswish",
    "quantized_po2",
    "quantized_relu",
    "quantized_relu_po2",
    "quantized_sigmoid",
    "quantized_tanh",
    "quantized_ulaw",
    "qkeras_weight_quantizer",
    "save_quantized_weights",
    "serialize",
    "stochastic_binary",
    "stochastic_ternary",
    "ternary",
    "to_config",
    "__version__",
]
