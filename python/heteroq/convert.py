# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""``model_quantize``: converts the float layers of a PyTorch model to heteroq's quantized layers
from a QKeras-format config (QKeras's ``utils.model_quantize``). The rules (which key applies,
which layers stay float, the activation defaults, the checks) are the C++ core's
``heteroq::nn::plan_model_quantize``, shared with the C++ converter."""
import copy
import json
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.utils.prune

from . import _C, _rnn
from . import nn as qnn
from .quantizers import Quantizer

__all__ = ["model_quantize"]

_QUANTIZED = (qnn.QConv2dBatchNorm, qnn.QLinearBatchNorm, qnn.QLinear, qnn.QConv1d, qnn.QConv2d, qnn.QConvTranspose2d, qnn.QDepthwiseConv2d,
              qnn._QSeparableConv, qnn._QBatchNorm, qnn.QActivation, qnn.QAvgPool2d,
              qnn.QGlobalAvgPool2d, _rnn._QRNNBase)

# Float recurrent layers -> Keras kind (a bidirectional one is "Bidirectional" + kind).
_RNN_KINDS = ((torch.nn.LSTM, "LSTM"), (torch.nn.GRU, "GRU"), (torch.nn.RNN, "SimpleRNN"))


def _describe(m: torch.nn.Module) -> Tuple[str, str]:
    """(Keras kind, activation name) of a float module; the kind is the class name otherwise."""
    if isinstance(m, _QUANTIZED):
        return type(m).__name__, ""
    if isinstance(m, torch.nn.Linear):
        return "Dense", ""
    if isinstance(m, torch.nn.Conv1d):
        return "Conv1D", ""
    if isinstance(m, torch.nn.Conv2d):
        depthwise = m.groups > 1 and m.groups == m.in_channels and m.out_channels % m.in_channels == 0
        return ("DepthwiseConv2D" if depthwise else "Conv2D"), ""
    if isinstance(m, torch.nn.ConvTranspose2d):
        return "Conv2DTranspose", ""
    if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        return "BatchNormalization", ""
    for cls, name in ((torch.nn.ReLU, "relu"), (torch.nn.Tanh, "tanh"), (torch.nn.Sigmoid, "sigmoid"),
                      (torch.nn.Hardswish, "hard_swish"), (torch.nn.LeakyReLU, "leakyrelu")):
        if isinstance(m, cls):
            return "Activation", name
    for cls, kind in _RNN_KINDS:
        if isinstance(m, cls):
            nonlinearity = "relu" if getattr(m, "nonlinearity", "tanh") == "relu" else "tanh"
            return ("Bidirectional" if m.bidirectional else "") + kind, nonlinearity
    if isinstance(m, torch.nn.AvgPool2d):
        return "AveragePooling2D", ""
    if isinstance(m, torch.nn.AdaptiveAvgPool2d):
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
        return ("GlobalAveragePooling2D" if tuple(size) == (1, 1) else "AdaptiveAvgPool2d"), ""
    return type(m).__name__, ""


def _leaves(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
    """The modules model_quantize considers: leaves, and heteroq layers (not entered)."""
    out = []

    def walk(prefix: str, m: torch.nn.Module) -> None:
        # _modules rather than named_children(): a module registered under two names must be
        # seen under both (named_children() yields it once).
        for name, child in m._modules.items():
            if child is None:
                continue
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, _QUANTIZED) or not any(True for _ in child.children()):
                out.append((full, child))
            else:
                walk(full, child)

    walk("", model)
    return out


def _jsonable(config: Dict[str, Any]) -> Any:
    if isinstance(config, Quantizer):
        return config.to_string()
    if isinstance(config, dict):
        return {str(k): _jsonable(v) for k, v in config.items()}
    return config


def _int_padding(m, name: str):
    if isinstance(m.padding, str):
        raise ValueError(f"model_quantize: layer '{name}': padding={m.padding!r} is not supported; "
                         f"give integer padding")
    return m.padding


def _build(m: torch.nn.Module, qclass: str, quantizers: Dict[str, str], name: str,
           bn: Optional[torch.nn.Module] = None) -> torch.nn.Module:
    q = quantizers.get
    if qclass in ("QSimpleRNN", "QLSTM", "QGRU"):
        if getattr(m, "proj_size", 0) > 0:
            raise ValueError(f"model_quantize: layer '{name}': LSTM with proj_size is not "
                             f"supported by QLSTM")
        # The activations the plan gives, else the float layer's (tanh or relu; sigmoid gates).
        float_act = "relu" if getattr(m, "nonlinearity", "tanh") == "relu" else "tanh"
        args = dict(num_layers=m.num_layers, bias=m.bias, batch_first=m.batch_first,
                    dropout=m.dropout, bidirectional=m.bidirectional,
                    kernel_quantizer=q("kernel_quantizer"),
                    recurrent_quantizer=q("recurrent_quantizer"),
                    bias_quantizer=q("bias_quantizer"), state_quantizer=q("state_quantizer"),
                    activation=q("activation") or float_act)
        if qclass == "QSimpleRNN":
            return qnn.QSimpleRNN(m.input_size, m.hidden_size, **args)
        cls = qnn.QLSTM if qclass == "QLSTM" else qnn.QGRU
        return cls(m.input_size, m.hidden_size,
                   recurrent_activation=q("recurrent_activation") or "sigmoid", **args)
    if qclass in ("QConv2DBatchnorm", "QDenseBatchnorm"):
        assert bn is not None
        delay = q("ema_freeze_delay")
        folding = dict(eps=bn.eps, momentum=bn.momentum, kernel_quantizer=q("kernel_quantizer"),
                       bias_quantizer=q("bias_quantizer"),
                       folding_mode=q("folding_mode") or "ema_stats_folding",
                       ema_freeze_delay=None if delay is None else int(delay))
        if qclass == "QDenseBatchnorm":
            return qnn.QLinearBatchNorm(m.in_features, m.out_features, m.bias is not None, **folding)
        return qnn.QConv2dBatchNorm(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                    _int_padding(m, name), m.dilation, m.groups, m.bias is not None,
                                    **folding)
    if qclass == "QDense":
        return qnn.QLinear(m.in_features, m.out_features, m.bias is not None,
                           q("kernel_quantizer"), q("bias_quantizer"))
    if qclass == "QConv1D":
        return qnn.QConv1d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                           _int_padding(m, name), m.dilation, m.groups, m.bias is not None,
                           m.padding_mode, q("kernel_quantizer"), q("bias_quantizer"))
    if qclass == "QConv2D":
        return qnn.QConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                           _int_padding(m, name), m.dilation, m.groups, m.bias is not None,
                           m.padding_mode, q("kernel_quantizer"), q("bias_quantizer"))
    if qclass == "QDepthwiseConv2D":
        return qnn.QDepthwiseConv2d(m.in_channels, m.kernel_size, m.out_channels // m.in_channels,
                                    m.stride, _int_padding(m, name), m.dilation, m.bias is not None,
                                    m.padding_mode, q("depthwise_quantizer"), q("bias_quantizer"))
    if qclass == "QConv2DTranspose":
        return qnn.QConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                    m.padding, m.output_padding, m.groups, m.bias is not None,
                                    m.dilation, m.padding_mode, q("kernel_quantizer"),
                                    q("bias_quantizer"))
    if qclass == "QBatchNormalization":
        cls = qnn.QBatchNorm1d if isinstance(m, torch.nn.BatchNorm1d) else qnn.QBatchNorm2d
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats,
                   q("gamma_quantizer"), q("beta_quantizer"), q("mean_quantizer"),
                   q("variance_quantizer"), q("inverse_quantizer"))
    if qclass == "QActivation":
        return qnn.QActivation(q("activation"))
    if qclass == "QAveragePooling2D":
        if m.divisor_override is not None:
            raise ValueError(f"model_quantize: layer '{name}': divisor_override is not supported")
        return qnn.QAvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                              m.count_include_pad, q("average_quantizer"), q("activation"))
    if qclass == "QGlobalAveragePooling2D":
        return qnn.QGlobalAvgPool2d(q("average_quantizer"), q("activation"), keepdim=True)
    raise AssertionError(f"model_quantize: no builder for {qclass}")  # pragma: no cover


def _parent(model: torch.nn.Module, name: str) -> torch.nn.Module:
    parent = model
    for p in name.split(".")[:-1]:
        parent = getattr(parent, p)
    return parent


def _fold_pairs(model: torch.nn.Module,
                leaves: List[Tuple[str, torch.nn.Module]]) -> Dict[int, int]:
    """Index of each Conv2d/Linear leaf directly followed by a matching BatchNorm2d/BatchNorm1d
    leaf in the same ``nn.Sequential`` (so the batch norm is applied to that layer's output and
    only to it) -> index of that batch norm. Shared modules and convolutions with a padding mode
    other than zeros are not folded."""
    counts: Dict[int, int] = {}
    for _, m in leaves:
        counts[id(m)] = counts.get(id(m), 0) + 1
    pairs = {}
    for i in range(len(leaves) - 1):
        (n1, a), (n2, b) = leaves[i], leaves[i + 1]
        p1, p2 = _parent(model, n1), _parent(model, n2)
        if p1 is not p2 or not isinstance(p1, torch.nn.Sequential):
            continue
        if counts[id(a)] > 1 or counts[id(b)] > 1:
            continue
        if not getattr(b, "affine", False) or not b.track_running_stats:
            continue
        if getattr(a, "padding_mode", "zeros") != "zeros":
            continue
        kind = _describe(a)[0]
        if kind == "Conv2D" and isinstance(b, torch.nn.BatchNorm2d) and b.num_features == a.out_channels:
            pairs[i] = i + 1
        elif kind == "Dense" and isinstance(b, torch.nn.BatchNorm1d) and b.num_features == a.out_features:
            pairs[i] = i + 1
    return pairs


def model_quantize(model: torch.nn.Module, quantizer_config: Dict[str, Any],
                   activation_bits: Optional[int] = None, transfer_weights: bool = False,
                   inplace: bool = False, enable_bn_folding: bool = False,
                   qkeras_compatible: bool = False) -> torch.nn.Module:
    """QKeras's ``model_quantize`` for PyTorch models.

    Replaces ``Linear``, ``Conv1d``, ``Conv2d`` (a depthwise ``QDepthwiseConv2d`` when
    ``groups == in_channels``), ``ConvTranspose2d``, ``BatchNorm1d/2d``, ``ReLU``/``Tanh``/
    ``Sigmoid``/``Hardswish``/``LeakyReLU``, ``AvgPool2d``, ``AdaptiveAvgPool2d(1)`` and
    ``RNN``/``LSTM``/``GRU`` (``QSimpleRNN``/``QLSTM``/``QGRU``; not LSTMs with ``proj_size``) by
    heteroq's quantized layers, per ``quantizer_config``: a dict keyed by layer name (the dotted
    name of ``named_modules``), by QKeras class (``"QDense"``, ``"QConv2D"``,
    ``"QDepthwiseConv2D"``, ``"QConv2DTranspose"``, ``"QConv1D"``, ``"QBatchNormalization"``,
    ``"QActivation"``, ``"QAveragePooling2D"``, ``"QGlobalAveragePooling2D"``, ``"QSimpleRNN"``,
    ``"QLSTM"``, ``"QGRU"``, and ``"QBidirectional"`` before the class for bidirectional recurrent
    layers; PyTorch spellings such as ``"QLinear"`` or ``"QRNN"`` work too), or ``"default"`` -- the
    first that exists applies. Values are dicts of quantizer slots
    (spec strings, quantizer objects or Keras-format dicts); a ``QActivation`` entry is a quantizer
    or ``{activation name: quantizer}``. As QKeras, a weight layer without a kernel quantizer stays
    float, and activations without an entry become ``quantized_relu/tanh/sigmoid(activation_bits)``
    when ``activation_bits`` is given. A recurrent layer's entry has QKeras's slots
    ``kernel_quantizer``, ``recurrent_quantizer``, ``bias_quantizer``, ``state_quantizer``,
    ``activation_quantizer`` and (LSTM, GRU) ``recurrent_activation_quantizer`` (quantizers, or float
    activation names such as ``"hard_sigmoid"``); without an activation quantizer its tanh/relu
    becomes ``quantized_tanh/quantized_relu(activation_bits)`` when ``activation_bits`` is given,
    and stays float otherwise, as do the gates (sigmoid) without a recurrent activation quantizer.

    Args:
        model: the float model (not modified unless ``inplace``).
        quantizer_config: the config described above.
        activation_bits: bits of the default activation quantizers.
        transfer_weights: copy parameters and running statistics into the new layers (QKeras's
            default is False: the new layers are freshly initialised).
        inplace: convert ``model`` itself instead of a deep copy.
        enable_bn_folding: a ``Conv2d`` (``Linear``) directly followed by a ``BatchNorm2d``
            (``BatchNorm1d``) in the same container becomes one ``QConv2dBatchNorm``
            (``QLinearBatchNorm``), configured by ``"QConv2DBatchnorm"`` (``"QDenseBatchnorm"``) or,
            as QKeras, the plain layer's key, with optional ``folding_mode`` and
            ``ema_freeze_delay``; the batch norm becomes ``Identity``. Without a kernel quantizer
            both stay float.
        qkeras_compatible: apply QKeras's implicit rule to the weight quantizers (kernel,
            recurrent, depthwise, batch-norm gamma and variance): without alpha, ``quantized_bits``,
            ``binary``, ``ternary`` and the stochastic ones train with ``alpha="auto_po2"`` (see
            :func:`heteroq.qkeras_weight_quantizer`). Off by default: heteroq applies quantizers
            exactly as given.

    Returns: the converted model (``model`` itself when ``inplace``).

    Raises:
        ValueError: a config key that names no layer and no known class, a bad quantizer (with key
            and slot), a quantizer that cannot serve its slot (e.g. ``quantized_relu`` as a kernel
            quantizer), a configured layer heteroq cannot convert.
    """
    if not isinstance(quantizer_config, dict):
        raise TypeError(f"model_quantize: `quantizer_config` must be a dict, got "
                        f"{type(quantizer_config).__name__}")
    if not inplace:
        # a pruned module keeps its pre-hook's last weight (with autograd history after a
        # training forward), which deepcopy refuses: recompute it without history
        with torch.no_grad():
            for m in model.modules():
                for hook in list(m._forward_pre_hooks.values()):
                    if isinstance(hook, torch.nn.utils.prune.BasePruningMethod):
                        setattr(m, hook._tensor_name, hook.apply_mask(m))
    target = model if inplace else copy.deepcopy(model)
    leaves = _leaves(target)
    described = [(name, *_describe(m)) for name, m in leaves]
    pairs = _fold_pairs(target, leaves) if enable_bn_folding else {}
    for i, j in pairs.items():
        kind = "Conv2DBatchnorm" if described[i][1] == "Conv2D" else "DenseBatchnorm"
        described[i] = (described[i][0], kind, "")
        described[j] = (described[j][0], "FoldedBatchNormalization", "")
    plans = _C.plan_model_quantize(json.dumps(_jsonable(quantizer_config)), described,
                                   activation_bits, qkeras_compatible)
    replacements = []
    built: Dict[int, Tuple[Any, torch.nn.Module, str]] = {}  # id(float module) -> (plan, new, name)
    for i, ((name, m), plan) in enumerate(zip(leaves, plans)):
        if id(m) in built:  # a module registered under several names: one replacement, shared
            first_plan, new, first_name = built[id(m)]
            if plan != first_plan:
                raise ValueError(f"model_quantize: layers '{first_name}' and '{name}' are the same "
                                 f"module but the config converts them differently")
            replacements.append((name, new))
            continue
        if plan is None:
            built[id(m)] = (None, m, name)
            continue
        qclass, quantizers = plan
        bn = leaves[pairs[i]][1] if i in pairs else None
        new = _build(m, qclass, dict(quantizers), name, bn)
        if bn is not None:
            replacements.append((leaves[pairs[i]][0], torch.nn.Identity()))
        params = list(m.parameters()) + list(m.buffers())
        if params:
            new = new.to(device=params[0].device)
            if params[0].is_floating_point():
                new = new.to(dtype=params[0].dtype)
        if transfer_weights:
            state = dict(m.state_dict())
            if bn is not None:
                state.update({"gamma": bn.weight, "beta": bn.bias, "running_mean": bn.running_mean,
                              "running_var": bn.running_var,
                              "num_batches_tracked": bn.num_batches_tracked})
            # a torch.nn.utils.prune'd layer: weight_orig * weight_mask is its weight; the
            # quantized layer is pruned with the same mask
            masks = {}
            for key in [k for k in state if k.endswith("_mask")]:
                n = key[:-len("_mask")]
                if n + "_orig" in state:
                    masks[n] = state.pop(key)
                    state[n] = state.pop(n + "_orig") * masks[n]
            new.load_state_dict(state)
            for n, mask in masks.items():
                torch.nn.utils.prune.custom_from_mask(new, n, mask)
        new.train(m.training)
        built[id(m)] = (plan, new, name)
        replacements.append((name, new))
    for name, new in replacements:
        setattr(_parent(target, name), name.split(".")[-1], new)
    return target
