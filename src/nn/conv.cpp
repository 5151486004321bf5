// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "heteroq/nn/conv.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace heteroq::nn {

namespace {

torch::Tensor apply_quantizer(const QuantizerArg& q, const torch::Tensor& t, bool training) {
  if (!q || !t.defined()) return t;
  return training ? q.get()->forward_train(t) : q.get()->forward(t);
}

template <size_t D>
std::string join(const torch::ExpandingArray<D>& a) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < D; ++i) os << (i ? ", " : "") << a->at(i);
  os << (D == 1 ? ",)" : ")");
  return os.str();
}

template <size_t D>
void check_positive(const char* who, const char* what, const torch::ExpandingArray<D>& a,
                    int64_t min_value) {
  for (size_t i = 0; i < D; ++i) {
    if (a->at(i) < min_value) {
      throw InvalidArgument(std::string(who) + ": `" + what + "` must be >= " +
                            std::to_string(min_value) + ", got " + join<D>(a));
    }
  }
}

}  // namespace

template <size_t D, bool Transposed, typename Derived>
QConvImplBase<D, Transposed, Derived>::QConvImplBase(QConvOptions<D> options_)
    : options(std::move(options_)) {
  const char* who = Transposed ? "QConvTranspose2d" : (D == 1 ? "QConv1d" : "QConv2d");
  if (options.in_channels() <= 0 || options.out_channels() <= 0) {
    throw InvalidArgument(std::string(who) + ": `in_channels` and `out_channels` must be > 0, got " +
                          std::to_string(options.in_channels()) + " and " +
                          std::to_string(options.out_channels()));
  }
  if (options.groups() <= 0 || options.in_channels() % options.groups() != 0 ||
      options.out_channels() % options.groups() != 0) {
    throw InvalidArgument(std::string(who) + ": `groups` (" + std::to_string(options.groups()) +
                          ") must be > 0 and divide in_channels (" +
                          std::to_string(options.in_channels()) + ") and out_channels (" +
                          std::to_string(options.out_channels()) + ")");
  }
  check_positive<D>(who, "kernel_size", options.kernel_size(), 1);
  check_positive<D>(who, "stride", options.stride(), 1);
  check_positive<D>(who, "dilation", options.dilation(), 1);
  check_positive<D>(who, "padding", options.padding(), 0);
  check_positive<D>(who, "output_padding", options.output_padding(), 0);
  reset();
}

template <size_t D, bool Transposed, typename Derived>
void QConvImplBase<D, Transposed, Derived>::reset() {
  std::vector<int64_t> shape;
  if (Transposed) {
    shape = {options.in_channels(), options.out_channels() / options.groups()};
  } else {
    shape = {options.out_channels(), options.in_channels() / options.groups()};
  }
  for (size_t i = 0; i < D; ++i) shape.push_back(options.kernel_size()->at(i));
  weight = this->register_parameter("weight", torch::empty(shape));
  if (options.bias()) {
    bias = this->register_parameter("bias", torch::empty(options.out_channels()));
  } else {
    bias = this->register_parameter("bias", {}, /*requires_grad=*/false);
  }
  reset_parameters();
}

template <size_t D, bool Transposed, typename Derived>
void QConvImplBase<D, Transposed, Derived>::reset_parameters() {
  // As torch::nn::Conv*d.
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5));
  if (bias.defined()) {
    const auto fan_in = std::get<0>(torch::nn::init::_calculate_fan_in_and_fan_out(weight));
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

template <size_t D, bool Transposed, typename Derived>
torch::Tensor QConvImplBase<D, Transposed, Derived>::quantized_weight() const {
  return apply_quantizer(options.kernel_quantizer(), weight, this->is_training());
}

template <size_t D, bool Transposed, typename Derived>
torch::Tensor QConvImplBase<D, Transposed, Derived>::quantized_bias() const {
  return apply_quantizer(options.bias_quantizer(), bias, this->is_training());
}

template <size_t D, bool Transposed, typename Derived>
torch::Tensor QConvImplBase<D, Transposed, Derived>::forward(const torch::Tensor& input) {
  const char* who = Transposed ? "QConvTranspose2d" : (D == 1 ? "QConv1d" : "QConv2d");
  TORCH_CHECK_VALUE((input.dim() == static_cast<int64_t>(D) + 2 ||
                     input.dim() == static_cast<int64_t>(D) + 1) &&
                        input.size(-static_cast<int64_t>(D) - 1) == options.in_channels(),
                    who, ": expected input of shape (N, ", options.in_channels(), ", ",
                    D == 1 ? "L" : "H, W", ") (N optional), got ", input.sizes());
  const torch::Tensor w = quantized_weight();
  const torch::Tensor b = quantized_bias();
  if constexpr (Transposed) {
    return at::conv_transpose2d(input, w, b, options.stride(), options.padding(),
                                options.output_padding(), options.groups(), options.dilation());
  } else if constexpr (D == 1) {
    return at::conv1d(input, w, b, options.stride(), options.padding(), options.dilation(),
                      options.groups());
  } else {
    return at::conv2d(input, w, b, options.stride(), options.padding(), options.dilation(),
                      options.groups());
  }
}

template <size_t D, bool Transposed, typename Derived>
void QConvImplBase<D, Transposed, Derived>::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::"
         << (Transposed ? "QConvTranspose2d" : (D == 1 ? "QConv1d" : "QConv2d")) << "("
         << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << join<D>(options.kernel_size())
         << ", stride=" << join<D>(options.stride());
  if (*options.padding() != *torch::ExpandingArray<D>(0)) {
    stream << ", padding=" << join<D>(options.padding());
  }
  if (options.groups() != 1) stream << ", groups=" << options.groups();
  if (!options.bias()) stream << ", bias=false";
  if (options.kernel_quantizer()) {
    stream << ", kernel_quantizer=" << options.kernel_quantizer().get()->to_string();
  }
  if (options.bias_quantizer()) {
    stream << ", bias_quantizer=" << options.bias_quantizer().get()->to_string();
  }
  stream << ")";
}

template class QConvImplBase<1, false, QConv1dImpl>;
template class QConvImplBase<2, false, QConv2dImpl>;
template class QConvImplBase<2, true, QConvTranspose2dImpl>;

// ------------------------------------------------------------------------------------------------
QDepthwiseConv2dImpl::QDepthwiseConv2dImpl(QDepthwiseConv2dOptions options_)
    : options(std::move(options_)) {
  if (options.in_channels() <= 0 || options.depth_multiplier() <= 0) {
    throw InvalidArgument("QDepthwiseConv2d: `in_channels` and `depth_multiplier` must be > 0, got " +
                          std::to_string(options.in_channels()) + " and " +
                          std::to_string(options.depth_multiplier()));
  }
  reset();
}

void QDepthwiseConv2dImpl::reset() {
  const int64_t c = options.in_channels();
  conv = register_module(
      "conv", QConv2d(QConv2dOptions(c, c * options.depth_multiplier(), options.kernel_size())
                          .stride(options.stride())
                          .padding(options.padding())
                          .dilation(options.dilation())
                          .groups(c)
                          .bias(options.bias())
                          .kernel_quantizer(options.depthwise_quantizer())
                          .bias_quantizer(options.bias_quantizer())));
}

void QDepthwiseConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::QDepthwiseConv2d(" << options.in_channels()
         << ", depth_multiplier=" << options.depth_multiplier()
         << ", kernel_size=" << join<2>(options.kernel_size());
  if (options.depthwise_quantizer()) {
    stream << ", depthwise_quantizer=" << options.depthwise_quantizer().get()->to_string();
  }
  if (options.bias_quantizer()) {
    stream << ", bias_quantizer=" << options.bias_quantizer().get()->to_string();
  }
  stream << ")";
}

// ------------------------------------------------------------------------------------------------
template <size_t D, typename Derived>
QSeparableConvImplBase<D, Derived>::QSeparableConvImplBase(QSeparableConvOptions<D> options_)
    : options(std::move(options_)) {
  if (options.in_channels() <= 0 || options.out_channels() <= 0 ||
      options.depth_multiplier() <= 0) {
    throw InvalidArgument(std::string(D == 1 ? "QSeparableConv1d" : "QSeparableConv2d") +
                          ": `in_channels`, `out_channels` and `depth_multiplier` must be > 0");
  }
  reset();
}

template <size_t D, typename Derived>
void QSeparableConvImplBase<D, Derived>::reset() {
  using Conv = std::conditional_t<D == 1, QConv1dImpl, QConv2dImpl>;
  const int64_t c = options.in_channels();
  const int64_t mid = c * options.depth_multiplier();
  depthwise = this->register_module(
      "depthwise", std::make_shared<Conv>(QConvOptions<D>(c, mid, options.kernel_size())
                                              .stride(options.stride())
                                              .padding(options.padding())
                                              .dilation(options.dilation())
                                              .groups(c)
                                              .bias(false)
                                              .kernel_quantizer(options.depthwise_quantizer())));
  pointwise = this->register_module(
      "pointwise", std::make_shared<Conv>(QConvOptions<D>(mid, options.out_channels(), 1)
                                              .bias(options.bias())
                                              .kernel_quantizer(options.pointwise_quantizer())
                                              .bias_quantizer(options.bias_quantizer())));
}

template <size_t D, typename Derived>
torch::Tensor QSeparableConvImplBase<D, Derived>::forward(const torch::Tensor& input) {
  return pointwise->forward(depthwise->forward(input));
}

template <size_t D, typename Derived>
void QSeparableConvImplBase<D, Derived>::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::" << (D == 1 ? "QSeparableConv1d(" : "QSeparableConv2d(")
         << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << join<D>(options.kernel_size())
         << ", depth_multiplier=" << options.depth_multiplier() << ")";
}

template class QSeparableConvImplBase<1, QSeparableConv1dImpl>;
template class QSeparableConvImplBase<2, QSeparableConv2dImpl>;

}  // namespace heteroq::nn
