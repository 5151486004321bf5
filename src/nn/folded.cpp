// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "heteroq/nn/folded.h"

#include <torch/torch.h>

#include <type_traits>

#include "heteroq/ops/quantize.h"

namespace heteroq::nn {

namespace {
constexpr bool kConv(const QConv2dBatchNormOptions*) { return true; }
constexpr bool kConv(const QLinearBatchNormOptions*) { return false; }

torch::Tensor quantize(const QuantizerArg& q, const torch::Tensor& t, bool training) {
  if (!q) return t;
  return training ? q.get()->forward_train(t) : q.get()->forward(t);
}
std::optional<torch::Tensor> opt(const torch::Tensor& t) {
  return t.defined() ? std::optional<torch::Tensor>(t) : std::nullopt;
}
}  // namespace

template <typename Options, typename Derived>
QFoldedImplBase<Options, Derived>::QFoldedImplBase(Options options_) : options(std::move(options_)) {
  constexpr bool conv = kConv(static_cast<const Options*>(nullptr));
  const char* who = conv ? "QConv2dBatchNorm" : "QLinearBatchNorm";
  const auto& f = options.folding();
  if (f.folding_mode() != "ema_stats_folding" && f.folding_mode() != "batch_stats_folding") {
    throw InvalidArgument(std::string(who) + ": `folding_mode` must be 'ema_stats_folding' or " +
                          "'batch_stats_folding', got '" + f.folding_mode() + "'");
  }
  if (!(f.eps() >= 0)) throw InvalidArgument(std::string(who) + ": `eps` must be >= 0");
  if (f.momentum() && !(*f.momentum() >= 0 && *f.momentum() <= 1)) {
    throw InvalidArgument(std::string(who) + ": `momentum` must be in [0, 1] or None");
  }
  if constexpr (std::is_same_v<Options, QConv2dBatchNormOptions>) {
    if (options.in_channels() <= 0 || options.out_channels() <= 0 || options.groups() <= 0 ||
        options.in_channels() % options.groups() || options.out_channels() % options.groups()) {
      throw InvalidArgument("QConv2dBatchNorm: channels must be > 0 and divisible by `groups`");
    }
  } else {
    if (options.in_features() <= 0 || options.out_features() <= 0) {
      throw InvalidArgument("QLinearBatchNorm: `in_features` and `out_features` must be > 0");
    }
  }
  reset();
}

template <typename Options, typename Derived>
void QFoldedImplBase<Options, Derived>::reset() {
  int64_t out = 0;
  torch::Tensor w;
  if constexpr (std::is_same_v<Options, QConv2dBatchNormOptions>) {
    out = options.out_channels();
    w = torch::empty({out, options.in_channels() / options.groups(), options.kernel_size()->at(0),
                      options.kernel_size()->at(1)});
  } else {
    out = options.out_features();
    w = torch::empty({out, options.in_features()});
  }
  weight = this->register_parameter("weight", w);
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5));
  if (options.bias()) {
    const auto fan_in = std::get<0>(torch::nn::init::_calculate_fan_in_and_fan_out(weight));
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    bias = this->register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
  } else {
    bias = this->register_parameter("bias", {}, false);
  }
  gamma = this->register_parameter("gamma", torch::ones({out}));
  beta = this->register_parameter("beta", torch::zeros({out}));
  running_mean = this->register_buffer("running_mean", torch::zeros({out}));
  running_var = this->register_buffer("running_var", torch::ones({out}));
  num_batches_tracked = this->register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

template <typename Options, typename Derived>
torch::Tensor QFoldedImplBase<Options, Derived>::op(const torch::Tensor& x, const torch::Tensor& w,
                                                    const torch::Tensor& b) const {
  if constexpr (std::is_same_v<Options, QConv2dBatchNormOptions>) {
    return torch::conv2d(x, w, b, options.stride(), options.padding(), options.dilation(),
                         options.groups());
  } else {
    return torch::nn::functional::linear(x, w, b);
  }
}

template <typename Options, typename Derived>
torch::Tensor QFoldedImplBase<Options, Derived>::forward(const torch::Tensor& x) {
  constexpr bool conv = kConv(static_cast<const Options*>(nullptr));
  TORCH_CHECK_VALUE(conv ? x.dim() == 4 : x.dim() == 2, conv ? "QConv2dBatchNorm" : "QLinearBatchNorm",
                    ": expected input of shape ", conv ? "(N, C, H, W)" : "(N, in_features)",
                    ", got ", x.sizes());
  const auto& f = options.folding();
  const double eps = f.eps();
  const bool training = this->is_training();
  const auto delay = f.ema_freeze_delay();
  const bool bn_training = training && (!delay || *delay < 0 ||
                                        num_batches_tracked.item<int64_t>() < *delay);
  torch::Tensor w, b, correction;
  if (bn_training) {
    const torch::Tensor y = op(x, weight, bias);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < y.dim(); ++d) dims.push_back(d);
    const torch::Tensor mean = y.mean(dims), var = y.var(dims, false);
    {
      torch::NoGradGuard g;
      num_batches_tracked.add_(1);
      const double m = f.momentum() ? *f.momentum() : 1.0 / num_batches_tracked.item<double>();
      const double n = static_cast<double>(y.numel() / y.size(1));
      running_mean.mul_(1 - m).add_(mean.detach(), m);
      running_var.mul_(1 - m).add_(var.detach() * (n / std::max(n - 1, 1.0)), m);
    }
    if (f.folding_mode() == "batch_stats_folding") {
      w = ops::_bn_fold_weight(weight, var, gamma, eps);
    } else {
      w = ops::_bn_fold_weight(weight, running_var, gamma, eps);
      correction = torch::sqrt(running_var + eps) * torch::rsqrt(var + eps);
    }
    b = ops::_bn_fold_bias(opt(bias), mean, var, gamma, beta, eps);
  } else {
    if (training) {
      torch::NoGradGuard g;
      num_batches_tracked.add_(1);
    }
    w = ops::_bn_fold_weight(weight, running_var, gamma, eps);
    b = ops::_bn_fold_bias(opt(bias), running_mean, running_var, gamma, beta, eps);
  }
  w = quantize(options.kernel_quantizer(), w, training);
  b = quantize(options.bias_quantizer(), b, training);
  torch::Tensor out = op(x, w, {});
  std::vector<int64_t> shape(out.dim(), 1);
  shape[1] = -1;
  if (correction.defined()) out = out * correction.view(shape);
  return out + b.view(shape);
}

template <typename Options, typename Derived>
std::vector<torch::Tensor> QFoldedImplBase<Options, Derived>::get_folded_weights() const {
  const double eps = options.folding().eps();
  return {ops::_bn_fold_weight(weight, running_var, gamma, eps),
          ops::_bn_fold_bias(opt(bias), running_mean, running_var, gamma, beta, eps)};
}

template <typename Options, typename Derived>
void QFoldedImplBase<Options, Derived>::pretty_print(std::ostream& stream) const {
  constexpr bool conv = kConv(static_cast<const Options*>(nullptr));
  int64_t in = 0;
  if constexpr (std::is_same_v<Options, QConv2dBatchNormOptions>) {
    in = options.in_channels();
  } else {
    in = options.in_features();
  }
  stream << "heteroq::nn::" << (conv ? "QConv2dBatchNorm" : "QLinearBatchNorm") << "(" << in
         << ", " << weight.size(0)
         << ", folding_mode=" << options.folding().folding_mode();
  if (options.kernel_quantizer()) {
    stream << ", kernel_quantizer=" << options.kernel_quantizer().get()->to_string();
  }
  if (options.bias_quantizer()) {
    stream << ", bias_quantizer=" << options.bias_quantizer().get()->to_string();
  }
  stream << ")";
}

template class QFoldedImplBase<QConv2dBatchNormOptions, QConv2dBatchNormImpl>;
template class QFoldedImplBase<QLinearBatchNormOptions, QLinearBatchNormImpl>;

}  // namespace heteroq::nn
