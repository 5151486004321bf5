# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Model configs (issue 4): to_config / from_config round trips for every class, the format, the
errors, and the same JSON in C++ (tests/cpp/config_cli.cpp)."""
import copy
import json
import subprocess
from collections import OrderedDict

import pytest
import torch

import heteroq
from heteroq import nn
from heteroq.config import FORMAT, VERSION, config_classes, from_config, to_config

Q = "quantized_bits(6,2,alpha=1)"
QB = "quantized_bits(8,3,alpha=1)"
QS = "quantized_bits(8,2,alpha=1)"  # the recurrent layers' state quantizer


def _cnn():
    return torch.nn.Sequential(OrderedDict([
        ("conv", nn.QConv2d(4, 6, 3, padding=1, kernel_quantizer=Q, bias_quantizer=QB)),
        ("bn", nn.QBatchNorm2d(6, gamma_quantizer="quantized_relu_po2(6,2048)")),
        ("act", nn.QActivation("quantized_relu(4,1)")),
        ("block", torch.nn.Sequential(OrderedDict([("pool", torch.nn.MaxPool2d(2)),
                                                   ("drop", torch.nn.Dropout(0.25))]))),
        ("flat", torch.nn.Flatten()),
        ("head", torch.nn.Sequential(nn.QLinear(54, 8, kernel_quantizer=Q), torch.nn.Hardswish(),
                                     torch.nn.Linear(8, 3))),
    ]))


# (id, model factory, input shape): every class the format knows, with arguments off their defaults.
CASES = [
    ("QLinear", lambda: nn.QLinear(6, 4, kernel_quantizer=Q, bias_quantizer=QB), (3, 6)),
    ("QLinear_nobias", lambda: nn.QLinear(6, 4, bias=False, kernel_quantizer="binary(alpha=1)"),
     (3, 6)),
    ("QConv1d", lambda: nn.QConv1d(4, 6, 3, stride=2, padding=1, groups=2, kernel_quantizer=Q,
                                   bias_quantizer=QB), (2, 4, 9)),
    ("QConv2d", lambda: nn.QConv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                                   kernel_quantizer=Q, bias_quantizer=QB), (2, 4, 6, 6)),
    ("QConvTranspose2d", lambda: nn.QConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1,
                                                     kernel_quantizer=Q, bias_quantizer=QB),
     (2, 4, 6, 6)),
    ("QDepthwiseConv2d", lambda: nn.QDepthwiseConv2d(4, 3, depth_multiplier=2, padding=1,
                                                     depthwise_quantizer=Q, bias_quantizer=QB),
     (2, 4, 6, 6)),
    ("QSeparableConv1d", lambda: nn.QSeparableConv1d(4, 5, 3, depth_multiplier=2, padding=1,
                                                     depthwise_quantizer=Q,
                                                     pointwise_quantizer="quantized_bits(4,0,alpha=1)",
                                                     bias_quantizer=QB), (2, 4, 9)),
    ("QSeparableConv2d", lambda: nn.QSeparableConv2d(4, 5, 3, stride=2, bias=False,
                                                     depthwise_quantizer=Q,
                                                     pointwise_quantizer=Q), (2, 4, 6, 6)),
    ("QActivation", lambda: nn.QActivation("quantized_relu(4,1)"), (2, 4, 6, 6)),
    ("QAdaptiveActivation", lambda: nn.QAdaptiveActivation(
        "quantized_relu", 6, current_step=3, quantization_delay=5, ema_freeze_delay=50,
        ema_decay=0.9, relu_neg_slope=0.25, relu_upper_bound=4.0), (2, 4, 6, 6)),
    ("QAdaptiveActivation_per_channel", lambda: nn.QAdaptiveActivation(
        "quantized_bits", 8, symmetric=False, per_channel=True, num_channels=4, po2_rounding=True),
     (2, 4, 6, 6)),
    ("QBatchNorm1d", lambda: nn.QBatchNorm1d(
        4, eps=1e-3, momentum=0.01, gamma_quantizer="quantized_relu_po2(6,2048)",
        beta_quantizer="quantized_po2(5)", mean_quantizer="quantized_po2(5)",
        variance_quantizer="quantized_relu_po2(6,quadratic_approximation=True)"), (3, 4)),
    ("QBatchNorm2d", lambda: nn.QBatchNorm2d(4, momentum=None, inverse_quantizer=QB), (2, 4, 6, 6)),
    ("QAvgPool2d", lambda: nn.QAvgPool2d(2, stride=1, padding=1, count_include_pad=False,
                                         average_quantizer="quantized_bits(8,0,alpha=1)",
                                         activation="quantized_relu(6,2)"), (2, 4, 6, 6)),
    ("QGlobalAvgPool2d", lambda: nn.QGlobalAvgPool2d(average_quantizer="quantized_bits(8,0,alpha=1)",
                                                     keepdim=True), (2, 4, 6, 6)),
    ("QConv2dBatchNorm", lambda: nn.QConv2dBatchNorm(4, 3, 3, padding=1, eps=1e-3, momentum=0.05,
                                                     kernel_quantizer=Q, bias_quantizer=QB,
                                                     folding_mode="batch_stats_folding",
                                                     ema_freeze_delay=100), (2, 4, 6, 6)),
    ("QLinearBatchNorm", lambda: nn.QLinearBatchNorm(6, 4, momentum=None, kernel_quantizer=Q),
     (3, 6)),
    ("QSimpleRNN", lambda: nn.QSimpleRNN(6, 5, num_layers=2, dropout=0.25, kernel_quantizer=Q,
                                         recurrent_quantizer=Q, bias_quantizer=QB,
                                         state_quantizer=QS, activation="relu"), (4, 3, 6)),
    ("QSimpleRNN_defaults", lambda: nn.QSimpleRNN(6, 5, batch_first=True, bidirectional=True),
     (3, 4, 6)),
    ("QLSTM", lambda: nn.QLSTM(6, 5, batch_first=True, bidirectional=True, kernel_quantizer=Q,
                               recurrent_quantizer=Q, state_quantizer=QS, activation=None,
                               recurrent_activation="quantized_sigmoid(8)", unit_forget_bias=False),
     (3, 4, 6)),
    ("QLSTM_defaults", lambda: nn.QLSTM(6, 5, num_layers=2, dropout=0.5, bias=False), (4, 3, 6)),
    ("QGRU", lambda: nn.QGRU(6, 5, kernel_quantizer=Q, bias_quantizer=QB,
                             activation="quantized_tanh(6)", recurrent_activation="sigmoid",
                             reset_after=False), (4, 6)),
    ("QGRU_float", lambda: nn.QGRU(6, 5, num_layers=2, bidirectional=True, activation="linear",
                                   recurrent_activation=None), (4, 3, 6)),
    ("Linear", lambda: torch.nn.Linear(6, 4, bias=False), (3, 6)),
    ("Conv1d", lambda: torch.nn.Conv1d(4, 5, 3, padding="same", padding_mode="reflect"), (2, 4, 9)),
    ("Conv2d", lambda: torch.nn.Conv2d(4, 6, (3, 1), stride=(2, 1), padding=(1, 0), groups=2,
                                       padding_mode="circular"), (2, 4, 6, 6)),
    ("Conv2d_valid", lambda: torch.nn.Conv2d(4, 2, 3, padding="valid", bias=False), (2, 4, 6, 6)),
    ("BatchNorm1d", lambda: torch.nn.BatchNorm1d(4, affine=False), (3, 4, 5)),
    ("BatchNorm2d", lambda: torch.nn.BatchNorm2d(4, eps=1e-3, momentum=None), (2, 4, 6, 6)),
    ("ReLU", lambda: torch.nn.ReLU(inplace=True), (2, 4, 6, 6)),
    ("Tanh", torch.nn.Tanh, (2, 4, 6, 6)),
    ("Sigmoid", torch.nn.Sigmoid, (2, 4, 6, 6)),
    ("Hardswish", torch.nn.Hardswish, (2, 4, 6, 6)),
    ("Flatten", lambda: torch.nn.Flatten(1, 2), (2, 4, 6, 6)),
    ("Dropout", lambda: torch.nn.Dropout(0.25), (2, 4, 6, 6)),
    ("AvgPool2d", lambda: torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                             count_include_pad=False, divisor_override=4),
     (2, 4, 6, 6)),
    ("MaxPool2d", lambda: torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 4, 6, 6)),
    ("Identity", torch.nn.Identity, (2, 4, 6, 6)),
    ("Sequential", _cnn, (2, 4, 6, 6)),
    ("Sequential_empty_block", lambda: torch.nn.Sequential(torch.nn.Sequential(), torch.nn.ReLU()),
     (2, 3)),
    # A recurrent layer returns (output, state): as a Sequential's last member it still runs.
    ("Sequential_rnn", lambda: torch.nn.Sequential(OrderedDict([
        ("act", nn.QActivation("quantized_bits(8,2,alpha=1)")),
        ("rnn", nn.QLSTM(4, 3, batch_first=True, kernel_quantizer=Q))])), (2, 5, 4)),
    ("RecurrentOutput", lambda: torch.nn.Sequential(OrderedDict([
        ("rnn", nn.QGRU(4, 3, batch_first=True, kernel_quantizer=Q)),
        ("last", nn.RecurrentOutput()), ("fc", nn.QLinear(3, 2, kernel_quantizer=Q))])), (2, 5, 4)),
]
IDS = [c[0] for c in CASES]


def _layer_classes(model):
    return [type(m) for m in model.modules()]


def _quantizer_specs(model):
    return {name: q.to_string() for name, q in model.named_modules()
            if isinstance(q, heteroq.Quantizer)}


def _layer_buffers(model):
    """The layers' buffers (Python's quantizers hold non-persistent buffers of their own, which
    C++'s quantizers do not have)."""
    owned = {f"{name}.{b}" if name else b for name, q in model.named_modules()
             if isinstance(q, heteroq.Quantizer) for b, _ in q.named_buffers()}
    return [(n, b) for n, b in model.named_buffers() if n not in owned]


def _fill(model):
    """The deterministic parameters of config_cli.cpp."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.linspace(-0.9, 1.1, p.numel()).view_as(p))
        for name, b in _layer_buffers(model):
            if b.is_floating_point():
                lo, hi = (0.5, 2.0) if name.endswith("running_var") else (-0.5, 0.5)
                b.copy_(torch.linspace(lo, hi, b.numel()).view_as(b))


def _outputs(y):
    """A layer's outputs as a flat list of tensors: (output, h_n), (output, (h_n, c_n)) in order."""
    if isinstance(y, torch.Tensor):
        return [y]
    return [t for item in y for t in _outputs(item)]


def _input(shape):
    n = 1
    for d in shape:
        n *= d
    return torch.linspace(-3, 3, n).view(shape)


@pytest.mark.parametrize("factory,shape", [c[1:] for c in CASES], ids=IDS)
def test_round_trip(factory, shape):
    model = factory()
    config = to_config(model)
    assert json.loads(json.dumps(config, allow_nan=False)) == config  # JSON as it is
    for source in (config, json.dumps(config)):
        copy_ = from_config(source)
        assert _layer_classes(copy_) == _layer_classes(model)
        assert to_config(copy_) == config
        assert _quantizer_specs(copy_) == _quantizer_specs(model)
        assert list(copy_.state_dict()) == list(model.state_dict())
        assert copy_.training
    # Same outputs with the same state, in eval and training mode.
    copy_.load_state_dict(model.state_dict())
    x = torch.randn(shape)
    for train in (False, True):
        model.train(train)
        copy_.train(train)
        torch.manual_seed(1)
        want = _outputs(model(x.clone()))
        torch.manual_seed(1)
        got = _outputs(copy_(x.clone()))
        assert len(got) == len(want)
        assert all(torch.equal(g, w) for g, w in zip(got, want))
    # The state the training calls changed (QAdaptiveActivation's statistics and step) is the same.
    for (name, b), (copy_name, copy_b) in zip(model.state_dict().items(), copy_.state_dict().items()):
        assert name == copy_name and torch.equal(b, copy_b)


def test_every_class_is_covered():
    covered = set()
    for _, factory, _ in CASES:
        covered.update(m["class"] for m in _walk(to_config(factory())))
    assert covered == set(config_classes())


def _walk(node):
    yield node
    for child in node.get("layers", []):
        yield from _walk(child)


def test_format():
    model = torch.nn.Sequential(OrderedDict([
        ("fc", nn.QDense(4, 3, kernel_quantizer="quantized_bits(4,0,alpha=1)")),
        ("act", nn.QActivation(heteroq.quantized_relu(4, 1))),
        ("out", torch.nn.Sequential(torch.nn.Linear(3, 2))),
    ]))
    assert to_config(model) == {
        "format": "heteroq.model_config", "version": 1, "class": "Sequential",
        "layers": [
            {"class": "QLinear", "name": "fc",
             "config": {"in_features": 4, "out_features": 3, "bias": True,
                        "kernel_quantizer": "quantized_bits(4,0,0,alpha=1.0)",
                        "bias_quantizer": None}},
            {"class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"}},
            {"class": "Sequential", "name": "out", "layers": [
                {"class": "Linear", "name": "0",
                 "config": {"in_features": 3, "out_features": 2, "bias": True}}]},
        ]}
    assert (FORMAT, VERSION) == ("heteroq.model_config", 1)
    # A single layer is a root of its own.
    assert to_config(torch.nn.Tanh()) == {"format": FORMAT, "version": 1, "class": "Tanh",
                                          "config": {}}
    assert isinstance(from_config(to_config(torch.nn.Tanh())), torch.nn.Tanh)


def test_optional_arguments_take_the_constructors_defaults():
    layer = from_config({"format": FORMAT, "version": 1, "class": "QConv2d",
                         "config": {"in_channels": 1, "out_channels": 2, "kernel_size": 3,
                                    "kernel_quantizer": "quantized_bits(4,0,alpha=1)"}})
    assert to_config(layer) == to_config(nn.QConv2d(1, 2, 3, kernel_quantizer="quantized_bits(4,0,alpha=1)"))
    pool = from_config({"format": FORMAT, "version": 1, "class": "AvgPool2d",
                        "config": {"kernel_size": [3, 2], "stride": None}})
    assert to_config(pool)["config"]["stride"] == [3, 2]
    # Quantizer specs are written in their canonical form.
    assert to_config(layer)["config"]["kernel_quantizer"] == "quantized_bits(4,0,0,alpha=1.0)"


def test_recurrent_activation_slots():
    """Absent: the constructor's defaults (QKeras's); null: the float function PyTorch uses
    there, written as its name; a name or a spec: that function or quantizer."""
    def lstm(**config):
        return from_config({"format": FORMAT, "version": 1, "class": "QLSTM",
                            "config": {"input_size": 4, "hidden_size": 3, **config}})

    default = lstm()
    assert to_config(default) == to_config(nn.QLSTM(4, 3))
    assert to_config(default)["config"]["activation"] == "quantized_tanh(8)"
    assert to_config(default)["config"]["recurrent_activation"] == "hard_sigmoid"
    assert default.activation.to_string() == "quantized_tanh(8)"
    assert default.recurrent_activation is None and default._recurrent_activation_fn == "hard_sigmoid"
    null = lstm(activation=None, recurrent_activation=None)
    assert null.activation is None and null.recurrent_activation is None
    assert (null._activation_fn, null._recurrent_activation_fn) == ("tanh", "sigmoid")
    written = to_config(null)["config"]
    assert (written["activation"], written["recurrent_activation"]) == ("tanh", "sigmoid")
    assert to_config(null) == to_config(nn.QLSTM(4, 3, activation=None, recurrent_activation=None))
    spec = lstm(activation="quantized_tanh(6,use_real_tanh=True)", recurrent_activation="relu")
    assert to_config(spec) == to_config(nn.QLSTM(4, 3, activation="quantized_tanh(6,use_real_tanh=True)",
                                                 recurrent_activation="relu"))
    assert spec._recurrent_activation_fn == "relu"
    # The same outputs as the layer built directly (the slots act as written).
    x = torch.randn(5, 2, 4)
    for config, direct in ((null, nn.QLSTM(4, 3, activation=None, recurrent_activation=None)),
                           (spec, nn.QLSTM(4, 3, activation="quantized_tanh(6,use_real_tanh=True)",
                                           recurrent_activation="relu"))):
        config.load_state_dict(direct.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(_outputs(config(x)), _outputs(direct(x))))


def test_adaptive_activation_writes_its_step_count():
    act = nn.QAdaptiveActivation("quantized_bits", 8)
    config = to_config(act)["config"]
    assert (config["current_step"], config["num_channels"]) == (-1, None)
    x = torch.randn(2, 4, 3)
    for _ in range(3):
        act(x)  # training calls count steps
    assert to_config(act)["config"]["current_step"] == 2
    copy_ = from_config(to_config(act))
    assert int(copy_.step) == 2
    # The constructor's default (None) is the same as -1.
    config = {"format": FORMAT, "version": 1, "class": "QAdaptiveActivation",
              "config": {"activation": "quantized_relu", "total_bits": 4, "current_step": None}}
    assert to_config(from_config(config)) == to_config(nn.QAdaptiveActivation("quantized_relu", 4))


def test_module_names_and_nesting():
    model = _cnn()
    copy_ = from_config(json.dumps(to_config(model)))
    assert [n for n, _ in copy_.named_modules()] == [n for n, _ in model.named_modules()]
    assert isinstance(copy_.block, torch.nn.Sequential) and isinstance(copy_.block.pool,
                                                                       torch.nn.MaxPool2d)


# ------------------------------------------------------------------------------------------------
# Errors. BASE is valid; each case breaks it and names the message (the same in C++: checked by
# test_cpp_reports_the_same_errors).

BASE = {"format": FORMAT, "version": 1, "class": "Sequential", "layers": [
    {"class": "QLinear", "name": "fc",
     "config": {"in_features": 6, "out_features": 4, "kernel_quantizer": "quantized_bits(4,0,alpha=1)"}},
    {"class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"}},
    {"class": "Sequential", "name": "head", "layers": [
        {"class": "QConv2d", "name": "conv", "config": {"in_channels": 1, "out_channels": 2,
                                                        "kernel_size": 3}},
        {"class": "Dropout", "name": "drop", "config": {}},
        {"class": "QConv2dBatchNorm", "name": "fold", "config": {"in_channels": 2, "out_channels": 2,
                                                                 "kernel_size": 1}},
    ]},
    {"class": "QLSTM", "name": "rnn", "config": {"input_size": 4, "hidden_size": 3,
                                                 "activation": "tanh"}},
    {"class": "QAdaptiveActivation", "name": "adapt",
     "config": {"activation": "quantized_relu", "total_bits": 8}},
]}
KNOWN = ", ".join(sorted(["Sequential", "QLinear", "QConv1d", "QConv2d", "QConvTranspose2d",
                          "QDepthwiseConv2d", "QSeparableConv1d", "QSeparableConv2d", "QActivation",
                          "QAdaptiveActivation", "QBatchNorm1d", "QBatchNorm2d", "QAvgPool2d",
                          "QGlobalAvgPool2d", "QConv2dBatchNorm", "QLinearBatchNorm", "QSimpleRNN",
                          "QLSTM", "QGRU", "Linear", "Conv1d", "Conv2d",
                          "BatchNorm1d", "BatchNorm2d", "ReLU", "Tanh", "Sigmoid", "Hardswish",
                          "Flatten", "Dropout", "AvgPool2d", "MaxPool2d", "Identity",
                          "RecurrentOutput"]))


def _fc(c):
    return c["layers"][0]["config"]


def _conv(c):
    return c["layers"][2]["layers"][0]["config"]


def _rnn(c):
    return c["layers"][3]["config"]


def _adapt(c):
    return c["layers"][4]["config"]


FLOAT_NAMES = '"tanh", "sigmoid", "hard_sigmoid", "relu", "linear"'
LSTM_ARGS = ("input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, "
             "kernel_quantizer, recurrent_quantizer, bias_quantizer, state_quantizer, activation, "
             "recurrent_activation, unit_forget_bias")


def _set(getter, key, value):
    def mutate(c):
        getter(c)[key] = value
    return mutate


def _del(getter, key):
    def mutate(c):
        del getter(c)[key]
    return mutate


def _root(c):
    return c


def _layer(i):
    return lambda c: c["layers"][i]


ERRORS = [
    ("format_missing", _del(_root, "format"), 'format: missing (expected "heteroq.model_config")'),
    ("format_wrong", _set(_root, "format", "keras"),
     'format: expected "heteroq.model_config", got "keras"'),
    ("version_missing", _del(_root, "version"), "version: missing (expected 1)"),
    ("version_string", _set(_root, "version", "1"), 'version: expected an integer, got "1"'),
    ("version_real", _set(_root, "version", 1.0), "version: expected an integer, got 1.0"),
    ("version_future", _set(_root, "version", 2),
     "version: unsupported version 2 (this heteroq reads version 1)"),
    ("root_class_missing", _del(_root, "class"), "class: missing"),
    ("root_name", _set(_root, "name", "net"),
     "name: unexpected key (expected format, version, class, layers)"),
    ("root_layers", _set(_root, "layers", {}), "layers: expected a list of layers, got {}"),
    ("unknown_class", _set(_layer(0), "class", "QDense"),
     f'layers[0].class: unknown class "QDense" (known: {KNOWN})'),
    ("class_not_string", _set(_layer(0), "class", 5), "layers[0].class: expected a string, got 5"),
    ("layer_not_object", lambda c: c["layers"].__setitem__(1, 3),
     "layers[1]: expected a layer (a JSON object), got 3"),
    ("unexpected_key", _set(_layer(0), "weights", []),
     "layers[0].weights: unexpected key (expected class, name, config)"),
    ("layers_on_a_layer", _set(_layer(1), "layers", []),
     "layers[1].layers: unexpected key (expected class, name, config)"),
    ("name_missing", _del(_layer(0), "name"), "layers[0].name: missing"),
    ("name_not_string", _set(_layer(0), "name", 0), "layers[0].name: expected a string, got 0"),
    ("name_dotted", _set(_layer(0), "name", "a.b"),
     'layers[0].name: "a.b" is not a valid module name (it must be non-empty and contain no ".")'),
    ("name_empty", _set(_layer(0), "name", ""),
     'layers[0].name: "" is not a valid module name (it must be non-empty and contain no ".")'),
    ("name_twice", _set(_layer(1), "name", "fc"), 'layers[1].name: "fc" is also the name of layers[0]'),
    ("config_missing", _del(_layer(0), "config"), "layers[0].config: missing"),
    ("config_not_object", _set(_layer(0), "config", []),
     "layers[0].config: expected an object, got []"),
    ("argument_missing", _del(_fc, "in_features"),
     "layers[0].config.in_features: missing (QLinear requires it)"),
    ("argument_unexpected", _set(_fc, "units", 4),
     "layers[0].config.units: unexpected argument (QLinear takes in_features, out_features, bias, "
     "kernel_quantizer, bias_quantizer)"),
    ("argument_for_no_argument_class", lambda c: c["layers"].__setitem__(
        1, {"class": "Tanh", "name": "t", "config": {"inplace": False}}),
     "layers[1].config.inplace: unexpected argument (Tanh takes no arguments)"),
    ("int_as_string", _set(_fc, "in_features", "6"),
     'layers[0].config.in_features: expected an integer >= 1, got "6"'),
    ("int_as_real", _set(_fc, "in_features", 6.0),
     "layers[0].config.in_features: expected an integer >= 1, got 6.0"),
    ("int_too_small", _set(_fc, "in_features", 0),
     "layers[0].config.in_features: expected an integer >= 1, got 0"),
    ("int_too_large", _set(_fc, "in_features", 2**63),
     "layers[0].config.in_features: expected an integer >= 1, got 9223372036854775808"),
    ("bool_as_int", _set(_fc, "bias", 1), "layers[0].config.bias: expected true or false, got 1"),
    ("quantizer_not_string", _set(_fc, "kernel_quantizer", 4),
     "layers[0].config.kernel_quantizer: expected a quantizer spec string or null, got 4"),
    ("quantizer_dict", _set(_fc, "kernel_quantizer", {"class_name": "binary"}),
     'layers[0].config.kernel_quantizer: expected a quantizer spec string or null, got '
     '{"class_name":"binary"}'),
    ("quantizer_null_activation", _set(lambda c: c["layers"][1]["config"], "activation", None),
     "layers[1].config.activation: expected a quantizer spec string, got null"),
    ("kernel_size_short", _set(_conv, "kernel_size", [3]),
     "layers[2].layers[0].config.kernel_size: expected an integer >= 1 or a list of 2 integers "
     ">= 1, got [3]"),
    ("kernel_size_string", _set(_conv, "kernel_size", "3"),
     'layers[2].layers[0].config.kernel_size: expected an integer >= 1 or a list of 2 integers '
     '>= 1, got "3"'),
    ("padding_word", _set(_conv, "padding", "full"),
     'layers[2].layers[0].config.padding: expected an integer >= 0, a list of 2 integers >= 0, '
     '"same" or "valid", got "full"'),
    ("padding_negative", _set(_conv, "padding", [1, -1]),
     'layers[2].layers[0].config.padding: expected an integer >= 0, a list of 2 integers >= 0, '
     '"same" or "valid", got [1,-1]'),
    ("padding_mode", _set(_conv, "padding_mode", "mirror"),
     'layers[2].layers[0].config.padding_mode: expected one of "zeros", "reflect", "replicate", '
     '"circular", got "mirror"'),
    ("probability", _set(lambda c: c["layers"][2]["layers"][1]["config"], "p", 1.5),
     "layers[2].layers[1].config.p: expected a number in [0, 1], got 1.5"),
    ("momentum_string", _set(lambda c: c["layers"][2]["layers"][2]["config"], "momentum", "0.1"),
     'layers[2].layers[2].config.momentum: expected a number in [0, 1] or null, got "0.1"'),
    ("eps_negative", _set(lambda c: c["layers"][2]["layers"][2]["config"], "eps", -1e-05),
     "layers[2].layers[2].config.eps: expected a number >= 0, got -1e-05"),
    ("folding_mode", _set(lambda c: c["layers"][2]["layers"][2]["config"], "folding_mode", "ema"),
     'layers[2].layers[2].config.folding_mode: expected one of "ema_stats_folding", '
     '"batch_stats_folding", got "ema"'),
    ("ema_freeze_delay_real", _set(lambda c: c["layers"][2]["layers"][2]["config"],
                                   "ema_freeze_delay", 1.5),
     "layers[2].layers[2].config.ema_freeze_delay: expected an integer or null, got 1.5"),
    ("nested_name_twice", _set(lambda c: c["layers"][2]["layers"][1], "name", "conv"),
     'layers[2].layers[1].name: "conv" is also the name of layers[2].layers[0]'),
    ("first_error_wins", lambda c: (_fc(c).update(in_features="x", units=1)),
     "layers[0].config.units: unexpected argument (QLinear takes in_features, out_features, bias, "
     "kernel_quantizer, bias_quantizer)"),
    # The recurrent layers.
    ("rnn_hidden_size_missing", _del(_rnn, "hidden_size"),
     "layers[3].config.hidden_size: missing (QLSTM requires it)"),
    ("rnn_reset_after_on_lstm", _set(_rnn, "reset_after", True),
     f"layers[3].config.reset_after: unexpected argument (QLSTM takes {LSTM_ARGS})"),
    ("rnn_num_layers", _set(_rnn, "num_layers", 0),
     "layers[3].config.num_layers: expected an integer >= 1, got 0"),
    ("rnn_dropout", _set(_rnn, "dropout", 2), "layers[3].config.dropout: expected a number in [0, 1], got 2"),
    ("rnn_unit_forget_bias", _set(_rnn, "unit_forget_bias", "yes"),
     'layers[3].config.unit_forget_bias: expected true or false, got "yes"'),
    ("activation_not_string", _set(_rnn, "activation", 3),
     f"layers[3].config.activation: expected a float activation ({FLOAT_NAMES}), a quantizer spec "
     f"string or null, got 3"),
    ("recurrent_activation_list", _set(_rnn, "recurrent_activation", ["sigmoid"]),
     f'layers[3].config.recurrent_activation: expected a float activation ({FLOAT_NAMES}), a '
     f'quantizer spec string or null, got ["sigmoid"]'),
    # QAdaptiveActivation.
    ("adaptive_activation_missing", _del(_adapt, "activation"),
     "layers[4].config.activation: missing (QAdaptiveActivation requires it)"),
    ("adaptive_activation_choice", _set(_adapt, "activation", "quantized_relu(8,2)"),
     'layers[4].config.activation: expected one of "quantized_bits", "quantized_relu", got '
     '"quantized_relu(8,2)"'),
    ("adaptive_total_bits", _set(_adapt, "total_bits", 0),
     "layers[4].config.total_bits: expected an integer >= 1, got 0"),
    ("adaptive_current_step", _set(_adapt, "current_step", 1.5),
     "layers[4].config.current_step: expected an integer or null, got 1.5"),
    ("adaptive_quantization_delay", _set(_adapt, "quantization_delay", -1),
     "layers[4].config.quantization_delay: expected an integer >= 0, got -1"),
    ("adaptive_ema_decay", _set(_adapt, "ema_decay", 1.5),
     "layers[4].config.ema_decay: expected a number in [0, 1], got 1.5"),
    ("adaptive_num_channels", _set(_adapt, "num_channels", 0),
     "layers[4].config.num_channels: expected an integer >= 1 or null, got 0"),
    ("adaptive_relu_neg_slope", _set(_adapt, "relu_neg_slope", None),
     "layers[4].config.relu_neg_slope: expected a number, got null"),
    ("adaptive_relu_upper_bound", _set(_adapt, "relu_upper_bound", "6"),
     'layers[4].config.relu_upper_bound: expected a number or null, got "6"'),
]
# Messages the C++ quantizer parser writes (the same parser in both languages).
SPEC_ERRORS = [
    ("quantizer_spec_syntax", _set(_fc, "kernel_quantizer", "quantized_bits(4,0"),
     "layers[0].config.kernel_quantizer: "),
    ("quantizer_spec_unknown", _set(_fc, "kernel_quantizer", "quantized_bitz(4)"),
     "layers[0].config.kernel_quantizer: "),
    ("quantizer_spec_value", _set(_fc, "kernel_quantizer", "quantized_bits(0,0)"),
     "layers[0].config.kernel_quantizer: "),
    ("rnn_state_quantizer_spec", _set(_rnn, "state_quantizer", "quantized_bits(4,0"),
     "layers[3].config.state_quantizer: "),
    ("activation_unknown_name", _set(_rnn, "activation", "tanhh"),
     f'layers[3].config.activation: "tanhh" is neither a float activation ({FLOAT_NAMES}) nor a '
     f'quantizer spec: '),
    ("recurrent_activation_bad_spec", _set(_rnn, "recurrent_activation", "quantized_sigmoid(0)"),
     f'layers[3].config.recurrent_activation: "quantized_sigmoid(0)" is neither a float activation '
     f'({FLOAT_NAMES}) nor a quantizer spec: '),
]
# Values the layer's constructor rejects: the path and class, then the layer's own message.
LAYER_ERRORS = [
    ("groups", lambda c: _conv(c).update(in_channels=3, out_channels=2, groups=2),
     "layers[2].layers[0] (QConv2d): "),
    ("same_padding_with_stride", lambda c: c["layers"].__setitem__(1, {
        "class": "Conv2d", "name": "c", "config": {"in_channels": 1, "out_channels": 1,
                                                   "kernel_size": 3, "stride": 2, "padding": "same"}}),
     "layers[1] (Conv2d): "),
    ("rnn_weight_quantizer_without_negatives", _set(_rnn, "kernel_quantizer", "quantized_relu(4,0)"),
     "layers[3] (QLSTM): QLSTM: `kernel_quantizer` = quantized_relu(4,0) cannot hold negative "
     "weights"),
    ("adaptive_per_channel_without_channels", _set(_adapt, "per_channel", True),
     "layers[4] (QAdaptiveActivation): QAdaptiveActivation: per_channel="),
]
# Malformed JSON text (the parsers' own words follow the prefix).
TEXT_ERRORS = [
    ("truncated", '{"format": ', "malformed JSON: "),
    ("not_json", "quantized_bits(4,0)", "malformed JSON: "),
    ("nan", '{"format": "heteroq.model_config", "version": NaN}', "malformed JSON: "),
    ("duplicate_key", '{"format": "heteroq.model_config", "version": 1, "version": 1}',
     'malformed JSON: duplicate key "version"'),
    ("not_object", "[1,2]", "the config must be a JSON object, got [1,2]"),
    ("root_not_object_string", '"Sequential"', 'the config must be a JSON object, got "Sequential"'),
]


def _broken(mutate):
    c = copy.deepcopy(BASE)
    mutate(c)
    return c


def test_base_is_valid():
    model = from_config(BASE)
    assert isinstance(model.head.fold, nn.QConv2dBatchNorm)
    assert isinstance(model.rnn, nn.QLSTM) and model.rnn._activation_fn == "tanh"
    assert isinstance(model.adapt, nn.QAdaptiveActivation)


@pytest.mark.parametrize("mutate,message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_the_json_path(mutate, message):
    config = _broken(mutate)
    for source in (config, json.dumps(config)):
        with pytest.raises(ValueError) as info:
            from_config(source)
        assert str(info.value) == "from_config: " + message


@pytest.mark.parametrize("mutate,prefix", [e[1:] for e in SPEC_ERRORS + LAYER_ERRORS],
                         ids=[e[0] for e in SPEC_ERRORS + LAYER_ERRORS])
def test_spec_and_layer_errors(mutate, prefix):
    with pytest.raises(ValueError) as info:
        from_config(_broken(mutate))
    text = str(info.value)
    assert text.startswith("from_config: " + prefix) and len(text) > len("from_config: " + prefix)


def test_spec_error_is_the_parser_message():
    with pytest.raises(ValueError) as parser:
        heteroq.get_quantizer("quantized_bits(4,0")
    with pytest.raises(ValueError) as config:
        from_config(_broken(_set(_fc, "kernel_quantizer", "quantized_bits(4,0")))
    assert str(config.value) == f"from_config: layers[0].config.kernel_quantizer: {parser.value}"


def test_activation_error_is_the_parser_message():
    """A string that is neither a float activation nor a valid spec: the parser's words follow."""
    for spec in ("tanhh", "quantized_sigmoid(0)", "quantized_tanh(8"):
        with pytest.raises(ValueError) as parser:
            heteroq.get_quantizer(spec)
        with pytest.raises(ValueError) as config:
            from_config(_broken(_set(_rnn, "activation", spec)))
        assert str(config.value) == (f"from_config: layers[3].config.activation: {json.dumps(spec)} "
                                     f"is neither a float activation ({FLOAT_NAMES}) nor a "
                                     f"quantizer spec: {parser.value}")
        # The layer's own check says the same of the spec.
        with pytest.raises(ValueError, match="is neither a float activation"):
            nn.QLSTM(4, 3, activation=spec)


@pytest.mark.parametrize("text,message", [e[1:] for e in TEXT_ERRORS], ids=[e[0] for e in TEXT_ERRORS])
def test_malformed_json(text, message):
    with pytest.raises(ValueError) as info:
        from_config(text)
    assert str(info.value).startswith("from_config: " + message)


def test_python_reserved_module_name():
    config = _broken(_set(_layer(1), "name", "training"))
    with pytest.raises(ValueError, match=r'^from_config: layers\[1\]\.name: "training" cannot be a '
                                         r'module name in Python'):
        from_config(config)


def test_from_config_rejects_other_types():
    with pytest.raises(TypeError, match="expected a dict or a JSON string, got list"):
        from_config([BASE])


class MyBlock(torch.nn.Module):
    def forward(self, x):
        return x


class MyLinear(nn.QLinear):
    """A subclass may change forward(): not a QLinear to the format."""


def test_to_config_errors_name_the_module():
    model = torch.nn.Sequential(OrderedDict([
        ("fc", nn.QLinear(2, 2)),
        ("body", torch.nn.Sequential(torch.nn.ReLU(), MyBlock())),
    ]))
    with pytest.raises(ValueError) as info:
        to_config(model)
    assert str(info.value) == (
        "to_config: module 'body.1' has class MyBlock (test_config.MyBlock), which heteroq's model "
        "config does not describe (supported: heteroq.config.config_classes())")
    with pytest.raises(ValueError, match=r"^to_config: the model has class MyBlock "):
        to_config(MyBlock())
    with pytest.raises(ValueError, match=r"^to_config: module '0' has class MyLinear "):
        to_config(torch.nn.Sequential(MyLinear(2, 2)))
    with pytest.raises(ValueError, match=r"^to_config: the model has class ModuleList "):
        to_config(torch.nn.ModuleList([torch.nn.ReLU()]))


def test_to_config_rejects_shared_modules():
    fc = torch.nn.Linear(2, 2)
    model = torch.nn.Sequential(OrderedDict([("a", fc), ("b", torch.nn.Sequential(fc))]))
    with pytest.raises(ValueError, match=r"^to_config: module 'b\.0' is the same module as 'a': a "
                                         r"config cannot express shared modules$"):
        to_config(model)


def test_to_config_rejects_values_the_format_cannot_hold():
    with pytest.raises(ValueError, match=r"^to_config: module '0' \(MaxPool2d\): return_indices: "):
        to_config(torch.nn.Sequential(torch.nn.MaxPool2d(2, return_indices=True)))
    bad = torch.nn.Sequential(nn.QLinear(2, 2))
    bad[0].kernel_quantizer = torch.nn.Identity()  # not a heteroq quantizer
    with pytest.raises(ValueError, match=r"^to_config: module '0' \(QLinear\): kernel_quantizer: a "
                                         r"Identity is not a heteroq quantizer$"):
        to_config(bad)
    with pytest.raises(ValueError, match=r"^to_config: the model \(Dropout\): p: expected a number "
                                         r"in \[0, 1\], got NaN$"):
        d = torch.nn.Dropout()
        d.p = float("nan")
        to_config(d)


def test_config_classes():
    assert config_classes() == KNOWN.split(", ")


# ------------------------------------------------------------------------------------------------
# The same JSON in C++: tests/cpp/config_cli.cpp rebuilds each config with
# heteroq::nn::module_from_config and prints its to_config, parameters and outputs.

# Python builds these; heteroq's C++ convolutions take integer zero padding only.
PYTHON_ONLY = [
    ("same_padding", lambda: nn.QConv2d(2, 2, 3, padding="same"),
     'config.padding: "same" padding is not supported by the C++ QConv2d (use integers)'),
    ("reflect_padding", lambda: torch.nn.Sequential(nn.QConv1d(2, 2, 3, padding_mode="reflect")),
     'layers[0].config.padding_mode: "reflect" is not supported by the C++ QConv1d (only "zeros")'),
    ("depthwise_valid_padding", lambda: nn.QDepthwiseConv2d(2, 3, padding="valid"),
     'config.padding: "valid" padding is not supported by the C++ QDepthwiseConv2d (use '
     'integers)'),
]


def _depthwise_cpp_name(name):
    # C++'s QDepthwiseConv2d holds its QConv2d as the submodule `conv`.
    return "conv." + name


@pytest.fixture(scope="module")
def cpp(build_dir, tmp_path_factory):
    exe = build_dir / "tests" / "cpp" / "heteroq_config_cli"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the target heteroq_config_cli")
    tmp = tmp_path_factory.mktemp("configs")
    args, keys = [], []
    for name, factory, shape in CASES:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(to_config(factory()), indent=2))
        args += [str(path), ",".join(map(str, shape))]
        keys.append(("case", name))
    for name, mutate, _ in ERRORS + SPEC_ERRORS + LAYER_ERRORS:
        path = tmp / f"error_{name}.json"
        path.write_text(json.dumps(_broken(mutate)))
        args += [str(path), "-"]
        keys.append(("error", name))
    for name, text, _ in TEXT_ERRORS:
        path = tmp / f"text_{name}.json"
        path.write_text(text)
        args += [str(path), "-"]
        keys.append(("text", name))
    for name, factory, _ in PYTHON_ONLY:
        path = tmp / f"python_only_{name}.json"
        path.write_text(json.dumps(to_config(factory())))
        args += [str(path), "-"]
        keys.append(("python_only", name))
    run = subprocess.run([str(exe), *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == len(keys)
    return dict(zip(keys, map(json.loads, lines)))


@pytest.mark.parametrize("factory,shape", [c[1:] for c in CASES], ids=IDS)
def test_cpp_builds_the_same_model(cpp, request, factory, shape):
    name = request.node.callspec.id
    result = cpp[("case", name)]
    assert "error" not in result, result.get("error")
    model = factory()
    config = to_config(model)
    # C++ writes back the config Python wrote, and Python reads C++'s.
    assert result["config"] == config
    assert to_config(from_config(json.dumps(result["config"]))) == config
    # The same parameters and buffers, in the same order.
    rename = _depthwise_cpp_name if name == "QDepthwiseConv2d" else (lambda n: n)
    assert result["parameters"] == [[rename(n), list(p.shape)] for n, p in model.named_parameters()]
    assert result["buffers"] == [[rename(n), list(b.shape)] for n, b in _layer_buffers(model)]
    # The same outputs, bit for bit, with the same deterministic parameters.
    _fill(model)
    model.eval()
    ys = _outputs(model(_input(shape)))  # every output tensor, in order (output, h_n, c_n)
    assert result["output"] == [v & 0xFFFFFFFF for y in ys
                                for v in y.detach().contiguous().view(torch.int32).flatten().tolist()]


@pytest.mark.parametrize("name,mutate,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_cpp_reports_the_same_errors(cpp, name, mutate, message):
    assert cpp[("error", name)] == {"error": "from_config: " + message}


@pytest.mark.parametrize("name,mutate,prefix", SPEC_ERRORS + LAYER_ERRORS,
                         ids=[e[0] for e in SPEC_ERRORS + LAYER_ERRORS])
def test_cpp_spec_and_layer_errors(cpp, name, mutate, prefix):
    error = cpp[("error", name)]["error"]
    assert error.startswith("from_config: " + prefix)
    if (name, mutate, prefix) in SPEC_ERRORS:  # the same parser: the same words
        with pytest.raises(ValueError) as info:
            from_config(_broken(mutate))
        assert error == str(info.value)


@pytest.mark.parametrize("name,text,message", TEXT_ERRORS, ids=[e[0] for e in TEXT_ERRORS])
def test_cpp_malformed_json(cpp, name, text, message):
    assert cpp[("text", name)]["error"].startswith("from_config: " + message)


@pytest.mark.parametrize("name,factory,message", PYTHON_ONLY, ids=[e[0] for e in PYTHON_ONLY])
def test_cpp_rejects_what_only_python_builds(cpp, name, factory, message):
    model = factory()
    assert to_config(from_config(to_config(model))) == to_config(model)  # fine in Python
    assert cpp[("python_only", name)] == {"error": "from_config: " + message}


def test_docs_example():
    """docs/config.md: the Python example runs, and the JSON shown is what it writes."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    python = re.findall(r"```python\n(.*?)```", text, re.S)
    shown = re.findall(r"```json\n(.*?)```", text, re.S)
    assert len(python) == 1 and len(shown) == 1
    scope = {}
    exec(compile(python[0], "docs/config.md", "exec"), scope)  # noqa: S102
    assert json.loads(shown[0]) == scope["config"]
