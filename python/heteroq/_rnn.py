# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Quantized recurrent layers: QKeras's ``QSimpleRNN``, ``QLSTM`` and ``QGRU`` (``QBidirectional``
through ``bidirectional=True``) with PyTorch's arguments, parameter names, shapes and forward
signature, so a float ``torch.nn.LSTM``'s ``state_dict`` loads into a ``QLSTM``.

The cell arithmetic is the registered operators ``torch.ops.heteroq.{hard_sigmoid,
_rnn_activation, _rnn_input, _rnn_state, _rnn_gates, _lstm_carry, _gru_gates, _gru_candidate,
_gru_update}``, which the C++ layers (``heteroq::nn::QLSTM``, ...) call too; the quantizers are
heteroq's quantizer modules.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .nn import _as_quantizer
from .quantizers import Quantizer

__all__ = ["QSimpleRNN", "QLSTM", "QGRU", "RecurrentOutput"]

QuantizerLike = Union[Quantizer, str, None]

# The float activations the activation slots accept by name (C++: rnn_float_activations()).
FLOAT_ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")


def _activation_slot(value: QuantizerLike, default: str, where: str) -> Tuple[Optional[Quantizer], str]:
    """(quantizer, "") for a quantizer or spec, (None, name) for a float function; None stands for
    PyTorch's float function there (``default``)."""
    if value is None:
        return None, default
    if isinstance(value, str):
        if value in FLOAT_ACTIVATIONS:
            return None, value
        try:
            return _as_quantizer(value, where), ""
        except ValueError as e:
            raise ValueError(f"{where}: {value!r} is neither a float activation "
                             f"({', '.join(FLOAT_ACTIVATIONS)}) nor a quantizer spec: {e}") from None
    return _as_quantizer(value, where), ""


def _weight_slot(value: QuantizerLike, layer: str, slot: str) -> Optional[Quantizer]:
    q = _as_quantizer(value, f"{layer}.{slot}")
    if q is not None and q.min() >= 0:
        raise ValueError(f"{layer}: `{slot}` = {q.to_string()} cannot hold negative weights (its "
                         f"minimum is {q.min()}; use quantized_bits, quantized_po2, binary or "
                         f"ternary)")
    return q


class _QRNNBase(torch.nn.RNNBase):
    """What QSimpleRNN, QLSTM and QGRU share: ``torch.nn.RNNBase``'s parameters
    (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``..._reverse``),
    initialisation and arguments, the layer loop and the quantizer slots."""

    _layer: str
    _activation_fn: str

    def __init__(self, mode: str, layer: str, input_size: int, hidden_size: int, num_layers: int,
                 bias: bool, batch_first: bool, dropout: float, bidirectional: bool,
                 kernel_quantizer: QuantizerLike, recurrent_quantizer: QuantizerLike,
                 bias_quantizer: QuantizerLike, state_quantizer: QuantizerLike,
                 activation: QuantizerLike, device, dtype) -> None:
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{layer}: `{name}` must be an integer, got {type(value).__name__}")
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{layer}: `input_size` and `hidden_size` must be > 0, got "
                             f"{input_size} and {hidden_size}")
        if num_layers < 1:
            raise ValueError(f"{layer}: `num_layers` must be >= 1, got {num_layers}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{layer}: `dropout` must be a number in [0, 1], got {dropout!r}")
        # Every slot is checked before anything is built.
        kernel = _weight_slot(kernel_quantizer, layer, "kernel_quantizer")
        recurrent = _weight_slot(recurrent_quantizer, layer, "recurrent_quantizer")
        bias_q = _weight_slot(bias_quantizer, layer, "bias_quantizer")
        state = _as_quantizer(state_quantizer, f"{layer}.state_quantizer")
        act, act_fn = _activation_slot(activation, "tanh", f"{layer}.activation")
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype)
        self._layer = layer
        self.kernel_quantizer = kernel
        self.recurrent_quantizer = recurrent
        self.bias_quantizer = bias_q
        self.state_quantizer = state
        self.activation = act
        self._activation_fn = act_fn

    # -- quantizer slots (TorchScript resolves the None checks when it compiles) --------------
    def _kernel(self, w: Tensor) -> Tensor:
        if self.kernel_quantizer is not None:
            return self.kernel_quantizer(w)
        return w

    def _recurrent(self, w: Tensor) -> Tensor:
        if self.recurrent_quantizer is not None:
            return self.recurrent_quantizer(w)
        return w

    def _bias(self, b: Tensor) -> Tensor:
        if self.bias_quantizer is not None:
            return self.bias_quantizer(b)
        return b

    def _state(self, h: Tensor) -> Tensor:
        if self.state_quantizer is not None:
            return self.state_quantizer(h)
        return h

    def _act(self, x: Tensor) -> Tensor:
        if self.activation is not None:
            return self.activation(x)
        return torch.ops.heteroq._rnn_activation(x, self._activation_fn)

    def quantized_parameters(self) -> Dict[str, Tensor]:
        """The weights and biases as the forward pass uses them (quantized), by parameter name."""
        out: Dict[str, Tensor] = {}
        for name, w in zip(self._flat_weights_names, self._flat_weights):
            if name.startswith("weight_ih"):
                out[name] = self._kernel(w)
            elif name.startswith("weight_hh"):
                out[name] = self._recurrent(w)
            else:
                out[name] = self._bias(w)
        return out

    def _run(self, input: Tensor, hx: Optional[Tensor],  # noqa: A002  (PyTorch's name)
             cx: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        lstm = self.mode == "LSTM"
        directions = 2 if self.bidirectional else 1
        num_states = self.num_layers * directions
        x = torch.ops.heteroq._rnn_input(input, self._flat_weights[0], self.batch_first,
                                         self._layer)
        h0 = torch.ops.heteroq._rnn_state(hx, input, num_states, self.hidden_size,
                                          self.batch_first, self._layer, "h_0" if lstm else "hx")
        c0: Optional[Tensor] = None
        if lstm:
            c0 = torch.ops.heteroq._rnn_state(cx, input, num_states, self.hidden_size,
                                              self.batch_first, self._layer, "c_0")
        per_direction = 4 if self.bias else 2
        h_n: List[Tensor] = []
        c_n: List[Tensor] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs: List[Tensor] = []
            for d in range(directions):
                idx = layer * directions + d
                base = idx * per_direction
                # The weights, quantized once per call (order: kernel, recurrent, biases).
                w_ih = self._kernel(self._flat_weights[base])
                w_hh = self._recurrent(self._flat_weights[base + 1])
                b_ih: Optional[Tensor] = None
                b_hh: Optional[Tensor] = None
                if self.bias:
                    b_ih = self._bias(self._flat_weights[base + 2])
                    b_hh = self._bias(self._flat_weights[base + 3])
                x_gates = F.linear(layer_input, w_ih, b_ih)
                c: Optional[Tensor] = None
                if c0 is not None:
                    c = c0[idx]
                out, h, c = self._direction(x_gates, h0[idx], c, w_hh, b_hh, d == 1)
                outputs.append(out)
                h_n.append(h)
                if c is not None:
                    c_n.append(c)
            layer_input = torch.cat(outputs, 2) if directions == 2 else outputs[0]
            if self.dropout > 0 and self.training and layer + 1 < self.num_layers:
                layer_input = F.dropout(layer_input, self.dropout, True)
        output = layer_input
        hn = torch.stack(h_n, 0)
        cn: Optional[Tensor] = None
        if lstm:
            cn = torch.stack(c_n, 0)
        if input.dim() == 2:
            output = output.squeeze(1)
            hn = hn.squeeze(1)
            if cn is not None:
                cn = cn.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, hn, cn

    def _direction(self, x_gates: Tensor, h: Tensor, c: Optional[Tensor], w_hh: Tensor,
                   b_hh: Optional[Tensor], reverse: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.activation is None:
            s += f", activation={self._activation_fn!r}"
        return s


class QSimpleRNN(_QRNNBase):
    """QKeras ``QSimpleRNN``: an Elman RNN, ``torch.nn.RNN``'s layout, with quantizers::

        h_t = act(x_t Qk(W_ih)^T + Qb(b_ih) + Qs(h_{t-1}) Qr(W_hh)^T + Qb(b_hh))

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
            dtype: as ``torch.nn.RNN`` (``bidirectional`` is QKeras's ``QBidirectional`` with
            ``merge_mode="concat"``). ``nonlinearity`` is the ``activation`` slot here: a float
            ReLU RNN is ``activation="relu"``.
        kernel_quantizer: quantizer of ``weight_ih`` (object, spec string or None = float).
        recurrent_quantizer: quantizer of ``weight_hh``.
        bias_quantizer: quantizer of ``bias_ih`` and of ``bias_hh`` (each on its own).
        state_quantizer: quantizer of the previous state h at every step (QKeras).
        activation: QKeras's default ``"quantized_tanh"`` (8 bits); a quantizer or spec string;
            ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"hard_sigmoid"``, ``"linear"`` for float
            functions; None = float tanh (PyTorch's).

    Shape: input ``(L, N, input_size)`` (``(N, L, input_size)`` with ``batch_first``) or
    ``(L, input_size)``; ``hx`` ``(num_layers * num_directions, N, hidden_size)`` (or without N),
    zeros if None. Returns ``(output, h_n)`` as ``torch.nn.RNN``.

    Example usage::

        rnn = heteroq.nn.QSimpleRNN(8, 16, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                                    recurrent_quantizer="quantized_bits(6,0,alpha=1)")
        output, h_n = rnn(torch.randn(5, 3, 8))     # (5, 3, 16), (1, 3, 16)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 kernel_quantizer: QuantizerLike = None, recurrent_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, state_quantizer: QuantizerLike = None,
                 activation: QuantizerLike = "quantized_tanh", device=None, dtype=None) -> None:
        super().__init__("RNN_TANH", "QSimpleRNN", input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, kernel_quantizer,
                         recurrent_quantizer, bias_quantizer, state_quantizer, activation, device,
                         dtype)

    def _direction(self, x_gates: Tensor, h: Tensor, c: Optional[Tensor], w_hh: Tensor,
                   b_hh: Optional[Tensor], reverse: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        steps = x_gates.size(0)
        out: List[Tensor] = []
        for s in range(steps):
            t = steps - 1 - s if reverse else s
            hq = self._state(h)
            h = self._act(torch.ops.heteroq._rnn_gates(x_gates[t], hq, w_hh, b_hh, 1)[0])
            out.append(h)
        if reverse:
            out.reverse()
        return torch.stack(out, 0), h, c

    def forward(self, input: Tensor, hx: Optional[Tensor] = None  # noqa: A002
                ) -> Tuple[Tensor, Tensor]:
        if not isinstance(input, Tensor):
            raise TypeError(f"QSimpleRNN: expected a tensor input (PackedSequence is not "
                            f"supported), got {type(input).__name__}")
        output, h_n, _ = self._run(input, hx, None)
        return output, h_n


class _QGatedRNN(_QRNNBase):
    """QLSTM and QGRU: the recurrent activation of the gates."""

    _recurrent_activation_fn: str

    def _set_gates(self, recurrent_activation: Tuple[Optional[Quantizer], str]) -> None:
        self.recurrent_activation = recurrent_activation[0]
        self._recurrent_activation_fn = recurrent_activation[1]

    def _ract(self, x: Tensor) -> Tensor:
        if self.recurrent_activation is not None:
            return self.recurrent_activation(x)
        return torch.ops.heteroq._rnn_activation(x, self._recurrent_activation_fn)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.recurrent_activation is None:
            s += f", recurrent_activation={self._recurrent_activation_fn!r}"
        return s


class QLSTM(_QGatedRNN):
    """QKeras ``QLSTM`` in ``torch.nn.LSTM``'s layout (gates i, f, g, o = Keras's i, f, c, o)::

        i, f, o = ract(.), g = act(.)   of x_t Qk(W_ih)^T + Qb(b_ih) + Qs(h_{t-1}) Qr(W_hh)^T + Qb(b_hh)
        c_t = f * Qs(c_{t-1}) + i * g
        h_t = o * act(c_t)

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
            dtype: as ``torch.nn.LSTM`` (no ``proj_size``).
        kernel_quantizer, recurrent_quantizer, bias_quantizer, state_quantizer: as
            :class:`QSimpleRNN`; the state quantizer acts on the previous h and c.
        activation: of g and of c in ``h = o * act(c)``: QKeras's default ``"quantized_tanh"``
            (8 bits); None or ``"tanh"``: float tanh (PyTorch's).
        recurrent_activation: of i, f, o: QKeras's default ``"hard_sigmoid"``,
            ``clip(0.5 x + 0.5, 0, 1)``; None or ``"sigmoid"``: float sigmoid (PyTorch's);
            or a quantizer such as ``"quantized_sigmoid(8)"``.
        unit_forget_bias: Keras's option, which QKeras always sets: ``reset_parameters()`` sets
            the forget gate's slice of ``bias_ih`` to 1 and of ``bias_hh`` to 0 (the rest keeps
            PyTorch's initialisation). False gives ``torch.nn.LSTM``'s initialisation exactly.

    ``forward(input, hx=None)`` returns ``(output, (h_n, c_n))`` as ``torch.nn.LSTM``; ``hx`` is
    ``(h_0, c_0)``.

    Example usage::

        lstm = heteroq.nn.QLSTM(8, 16, batch_first=True,
                                kernel_quantizer="quantized_bits(8,0,alpha=1)",
                                recurrent_quantizer="quantized_bits(8,0,alpha=1)")
        output, (h_n, c_n) = lstm(torch.randn(3, 5, 8))   # (3, 5, 16), (1, 3, 16), (1, 3, 16)
    """

    unit_forget_bias: bool

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 kernel_quantizer: QuantizerLike = None, recurrent_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, state_quantizer: QuantizerLike = None,
                 activation: QuantizerLike = "quantized_tanh",
                 recurrent_activation: QuantizerLike = "hard_sigmoid",
                 unit_forget_bias: bool = True, device=None, dtype=None) -> None:
        ract = _activation_slot(recurrent_activation, "sigmoid", "QLSTM.recurrent_activation")
        super().__init__("LSTM", "QLSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, kernel_quantizer, recurrent_quantizer,
                         bias_quantizer, state_quantizer, activation, device, dtype)
        self._set_gates(ract)
        self.unit_forget_bias = unit_forget_bias
        if unit_forget_bias:
            self._set_forget_bias()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation, then Keras's unit forget bias if ``unit_forget_bias``."""
        super().reset_parameters()
        if getattr(self, "unit_forget_bias", False):
            self._set_forget_bias()

    def _set_forget_bias(self) -> None:
        if not self.bias:
            return
        h = self.hidden_size
        with torch.no_grad():
            for name, w in zip(self._flat_weights_names, self._flat_weights):
                if name.startswith("bias_ih"):
                    w[h:2 * h].fill_(1.0)
                elif name.startswith("bias_hh"):
                    w[h:2 * h].fill_(0.0)

    def _direction(self, x_gates: Tensor, h: Tensor, c: Optional[Tensor], w_hh: Tensor,
                   b_hh: Optional[Tensor], reverse: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        assert c is not None
        steps = x_gates.size(0)
        out: List[Tensor] = []
        for s in range(steps):
            t = steps - 1 - s if reverse else s
            # QKeras quantizes the previous carry, then the previous output.
            cq = self._state(c)
            hq = self._state(h)
            g = torch.ops.heteroq._rnn_gates(x_gates[t], hq, w_hh, b_hh, 4)
            i = self._ract(g[0])
            f = self._ract(g[1])
            cand = self._act(g[2])
            o = self._ract(g[3])
            c = torch.ops.heteroq._lstm_carry(i, f, cand, cq)
            h = o * self._act(c)
            out.append(h)
        if reverse:
            out.reverse()
        return torch.stack(out, 0), h, c

    def forward(self, input: Tensor,  # noqa: A002
                hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if not isinstance(input, Tensor):
            raise TypeError(f"QLSTM: expected a tensor input (PackedSequence is not supported), "
                            f"got {type(input).__name__}")
        h0: Optional[Tensor] = None
        c0: Optional[Tensor] = None
        if hx is not None:
            h0 = hx[0]
            c0 = hx[1]
        output, h_n, c_n = self._run(input, h0, c0)
        assert c_n is not None
        return output, (h_n, c_n)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", unit_forget_bias={self.unit_forget_bias}"


class QGRU(_QGatedRNN):
    """QKeras ``QGRU`` in ``torch.nn.GRU``'s layout and gate order (r, z, n; Keras's z, r, h)::

        r, z = ract(.)   of x_t Qk(W_ih)^T + Qb(b_ih) + Qs(h) Qr(W_hh)^T + Qb(b_hh)
        n = act(x_n + r * (Qs(h) W_hn^T + b_hn))      reset_after=True (default, PyTorch's)
        n = act(x_n + (r * Qs(h)) W_hn^T + b_hn)      reset_after=False (Keras's, QKeras's default)
        h_t = (1 - z) * n + z * Qs(h_{t-1})

    Args: those of :class:`QLSTM` (no ``unit_forget_bias``), plus ``reset_after``. Unlike QKeras
    (which uses the input kernel's quantizer in the recurrence when no ``recurrent_quantizer`` is
    given; google/qkeras PR #89), the recurrent kernel always goes through
    ``recurrent_quantizer`` (or stays float without one).

    ``forward(input, hx=None)`` returns ``(output, h_n)`` as ``torch.nn.GRU``.

    Example usage::

        gru = heteroq.nn.QGRU(8, 16, kernel_quantizer="quantized_bits(8,0,alpha=1)",
                              recurrent_quantizer="quantized_bits(8,0,alpha=1)",
                              reset_after=False)
        output, h_n = gru(torch.randn(5, 3, 8))
    """

    reset_after: bool

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 kernel_quantizer: QuantizerLike = None, recurrent_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, state_quantizer: QuantizerLike = None,
                 activation: QuantizerLike = "quantized_tanh",
                 recurrent_activation: QuantizerLike = "hard_sigmoid", reset_after: bool = True,
                 device=None, dtype=None) -> None:
        ract = _activation_slot(recurrent_activation, "sigmoid", "QGRU.recurrent_activation")
        super().__init__("GRU", "QGRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, kernel_quantizer, recurrent_quantizer,
                         bias_quantizer, state_quantizer, activation, device, dtype)
        self._set_gates(ract)
        self.reset_after = bool(reset_after)

    def _direction(self, x_gates: Tensor, h: Tensor, c: Optional[Tensor], w_hh: Tensor,
                   b_hh: Optional[Tensor], reverse: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        steps = x_gates.size(0)
        out: List[Tensor] = []
        for s in range(steps):
            t = steps - 1 - s if reverse else s
            xt = x_gates[t]
            hq = self._state(h)
            rz = torch.ops.heteroq._gru_gates(xt, hq, w_hh, b_hh)
            r = self._ract(rz[0])
            z = self._ract(rz[1])
            n = self._act(torch.ops.heteroq._gru_candidate(xt, r, hq, w_hh, b_hh,
                                                           self.reset_after))
            h = torch.ops.heteroq._gru_update(z, n, hq)
            out.append(h)
        if reverse:
            out.reverse()
        return torch.stack(out, 0), h, c

    def forward(self, input: Tensor, hx: Optional[Tensor] = None  # noqa: A002
                ) -> Tuple[Tensor, Tensor]:
        if not isinstance(input, Tensor):
            raise TypeError(f"QGRU: expected a tensor input (PackedSequence is not supported), "
                            f"got {type(input).__name__}")
        output, h_n, _ = self._run(input, hx, None)
        return output, h_n

    def extra_repr(self) -> str:
        return super().extra_repr() + f", reset_after={self.reset_after}"


class RecurrentOutput(torch.nn.Module):
    """What a recurrent layer passes on (Keras's ``return_sequences``), so that a QSimpleRNN,
    QLSTM or QGRU can sit in an ``nn.Sequential``: it takes the layer's tuple and returns its
    output sequence (``return_sequences=True``), or the last layer's final states with the
    directions side by side, ``(N, D * hidden_size)`` (the default, Keras's
    ``return_sequences=False``). :func:`heteroq.deploy.compile` reads it after a recurrent layer.

    Example usage::

        model = torch.nn.Sequential(
            heteroq.nn.QActivation("quantized_bits(8,2,alpha=1)"),
            heteroq.nn.QGRU(6, 16, batch_first=True, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                            recurrent_quantizer="quantized_bits(6,0,alpha=1)",
                            state_quantizer="quantized_bits(8,0,alpha=1)"),
            heteroq.nn.RecurrentOutput(),                      # (N, 16): the final state
            heteroq.nn.QDense(16, 5, kernel_quantizer="quantized_bits(6,0,alpha=1)"))
    """

    return_sequences: bool

    def __init__(self, return_sequences: bool = False) -> None:
        super().__init__()
        if not isinstance(return_sequences, bool):
            raise TypeError(f"RecurrentOutput: `return_sequences` must be a bool, got "
                            f"{type(return_sequences).__name__}")
        self.return_sequences = return_sequences

    def forward(self, x: Tuple[Tensor, Union[Tensor, Tuple[Tensor, Tensor]]]) -> Tensor:
        if not isinstance(x, tuple) or len(x) != 2:
            raise TypeError("RecurrentOutput: expected a recurrent layer's (output, h_n) or "
                            "(output, (h_n, c_n)) tuple")
        output, state = x
        h_n = state[0] if isinstance(state, tuple) else state
        return torch.ops.heteroq._rnn_output(output, h_n, self.return_sequences)

    def extra_repr(self) -> str:
        return f"return_sequences={self.return_sequences}"

