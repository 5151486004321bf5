// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "heteroq/nn/norm_pool.h"

#include <torch/torch.h>

#include "heteroq/ops/quantize.h"

namespace heteroq::nn {

namespace {
torch::Tensor quantize_slot(const QuantizerArg& q, const torch::Tensor& t, bool training) {
  if (!q || !t.defined()) return t;
  return training ? q.get()->forward_train(t) : q.get()->forward(t);
}
std::optional<torch::Tensor> opt(const torch::Tensor& t) {
  return t.defined() ? std::optional<torch::Tensor>(t) : std::nullopt;
}
}  // namespace

template <size_t D, typename Derived>
QBatchNormImplBase<D, Derived>::QBatchNormImplBase(QBatchNormOptions options_)
    : options(std::move(options_)) {
  const char* who = D == 1 ? "QBatchNorm1d" : "QBatchNorm2d";
  if (options.num_features() <= 0) {
    throw InvalidArgument(std::string(who) + ": `num_features` must be > 0, got " +
                          std::to_string(options.num_features()));
  }
  if (!(options.eps() >= 0)) {
    throw InvalidArgument(std::string(who) + ": `eps` must be >= 0");
  }
  if (options.momentum() && !(*options.momentum() >= 0 && *options.momentum() <= 1)) {
    throw InvalidArgument(std::string(who) + ": `momentum` must be in [0, 1] or None");
  }
  reset();
}

template <size_t D, typename Derived>
void QBatchNormImplBase<D, Derived>::reset() {
  const int64_t c = options.num_features();
  if (options.affine()) {
    weight = this->register_parameter("weight", torch::ones({c}));
    bias = this->register_parameter("bias", torch::zeros({c}));
  } else {
    weight = this->register_parameter("weight", {}, false);
    bias = this->register_parameter("bias", {}, false);
  }
  if (options.track_running_stats()) {
    running_mean = this->register_buffer("running_mean", torch::zeros({c}));
    running_var = this->register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = this->register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  } else {
    running_mean = this->register_buffer("running_mean", {});
    running_var = this->register_buffer("running_var", {});
    num_batches_tracked = this->register_buffer("num_batches_tracked", {});
  }
}

template <size_t D, typename Derived>
void QBatchNormImplBase<D, Derived>::reset_running_stats() {
  if (!options.track_running_stats()) return;
  torch::NoGradGuard g;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

template <size_t D, typename Derived>
void QBatchNormImplBase<D, Derived>::reset_parameters() {
  reset_running_stats();
  if (options.affine()) {
    torch::NoGradGuard g;
    weight.fill_(1);
    bias.zero_();
  }
}

template <size_t D, typename Derived>
torch::Tensor QBatchNormImplBase<D, Derived>::forward(const torch::Tensor& x) {
  const char* who = D == 1 ? "QBatchNorm1d" : "QBatchNorm2d";
  const bool shape_ok = D == 1 ? (x.dim() == 2 || x.dim() == 3) : x.dim() == 4;
  TORCH_CHECK_VALUE(shape_ok && x.size(1) == options.num_features(), who, ": expected input of shape ",
                    D == 1 ? "(N, C) or (N, C, L)" : "(N, C, H, W)", " with C = ",
                    options.num_features(), ", got ", x.sizes());
  const bool training = this->is_training();
  torch::Tensor mean, var;
  if (training || !options.track_running_stats()) {
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    mean = x.mean(dims);
    var = x.var(dims, /*unbiased=*/false);
    if (training && options.track_running_stats()) {
      torch::NoGradGuard g;
      num_batches_tracked.add_(1);
      const double m = options.momentum() ? *options.momentum()
                                          : 1.0 / num_batches_tracked.item<double>();
      const double n = static_cast<double>(x.numel() / x.size(1));
      running_mean.mul_(1 - m).add_(mean.detach(), m);
      running_var.mul_(1 - m).add_(var.detach() * (n / std::max(n - 1, 1.0)), m);
    }
  } else {
    mean = running_mean;
    var = running_var;
  }
  torch::Tensor inv;
  if (options.inverse_quantizer()) {
    inv = quantize_slot(options.inverse_quantizer(), ops::_bn_inverse(var, opt(weight), options.eps()),
                training);
  } else {
    inv = ops::_bn_inverse(quantize_slot(options.variance_quantizer(), var, training),
                           opt(quantize_slot(options.gamma_quantizer(), weight, training)), options.eps());
  }
  return ops::_bn_apply(x, inv, quantize_slot(options.mean_quantizer(), mean, training),
                        opt(quantize_slot(options.beta_quantizer(), bias, training)));
}

template <size_t D, typename Derived>
void QBatchNormImplBase<D, Derived>::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::" << (D == 1 ? "QBatchNorm1d(" : "QBatchNorm2d(")
         << options.num_features() << ", eps=" << options.eps();
  const std::pair<const char*, const QuantizerArg*> slots[] = {
      {"gamma_quantizer", &options.gamma_quantizer()},
      {"beta_quantizer", &options.beta_quantizer()},
      {"mean_quantizer", &options.mean_quantizer()},
      {"variance_quantizer", &options.variance_quantizer()},
      {"inverse_quantizer", &options.inverse_quantizer()}};
  for (const auto& [name, q] : slots) {
    if (*q) stream << ", " << name << "=" << q->get()->to_string();
  }
  stream << ")";
}

template class QBatchNormImplBase<1, QBatchNorm1dImpl>;
template class QBatchNormImplBase<2, QBatchNorm2dImpl>;

// ------------------------------------------------------------------------------------------------
QAvgPool2dImpl::QAvgPool2dImpl(QAvgPool2dOptions options_) : options(std::move(options_)) {
  for (int i = 0; i < 2; ++i) {
    if (options.kernel_size()->at(i) < 1 || options.stride()->at(i) < 1 ||
        options.padding()->at(i) < 0) {
      throw InvalidArgument("QAvgPool2d: `kernel_size` and `stride` must be >= 1 and `padding` >= 0");
    }
  }
}

torch::Tensor QAvgPool2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK_VALUE(x.dim() == 3 || x.dim() == 4,
                    "QAvgPool2d: expected input of shape (N, C, H, W) or (C, H, W), got ",
                    x.sizes());
  torch::Tensor y;
  if (options.average_quantizer()) {
    const double area = static_cast<double>(options.kernel_size()->at(0) * options.kernel_size()->at(1));
    const torch::Tensor factor =
        quantize_slot(options.average_quantizer(), torch::full({}, 1.0 / area, x.options()), is_training());
    y = ops::_sum_pool2d_scaled(x, options.kernel_size(), options.stride(), options.padding(),
                                options.ceil_mode(), options.count_include_pad(), factor);
  } else {
    y = torch::avg_pool2d(x, options.kernel_size(), options.stride(), options.padding(),
                          options.ceil_mode(), options.count_include_pad());
  }
  return quantize_slot(options.activation(), y, is_training());
}

void QAvgPool2dImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::QAvgPool2d(kernel_size=[" << options.kernel_size()->at(0) << ", "
         << options.kernel_size()->at(1) << "]";
  if (options.average_quantizer()) {
    stream << ", average_quantizer=" << options.average_quantizer().get()->to_string();
  }
  if (options.activation()) stream << ", activation=" << options.activation().get()->to_string();
  stream << ")";
}

QGlobalAvgPool2dImpl::QGlobalAvgPool2dImpl(QGlobalAvgPool2dOptions options_)
    : options(std::move(options_)) {}

torch::Tensor QGlobalAvgPool2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK_VALUE(x.dim() == 4, "QGlobalAvgPool2d: expected input of shape (N, C, H, W), got ",
                    x.sizes());
  torch::Tensor y;
  if (options.average_quantizer()) {
    const double area = static_cast<double>(x.size(2) * x.size(3));
    const torch::Tensor factor =
        quantize_slot(options.average_quantizer(), torch::full({}, 1.0 / area, x.options()), is_training());
    y = x.sum({2, 3}, options.keepdim()) * factor;
  } else {
    y = x.mean({2, 3}, options.keepdim());
  }
  return quantize_slot(options.activation(), y, is_training());
}

void QGlobalAvgPool2dImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::QGlobalAvgPool2d(";
  if (options.average_quantizer()) {
    stream << "average_quantizer=" << options.average_quantizer().get()->to_string();
  }
  stream << ")";
}

}  // namespace heteroq::nn
