// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Saving and loading quantized weights (QKeras's model_save_quantized_weights), in three layers:
//   1. quantize_to_integer(): a quantizer's output as integer codes and scales (one function per
//      encoding, the format read from the quantizer's parameters, the codes recovered from its
//      output and checked bit for bit against it);
//   2. write_tensor_file() / read_tensor_file(): the safetensors container (docs/saving.md),
//      written atomically (temporary file, fsync, rename) and read with full validation;
//   3. save_layers() / load_layers(): the model-level logic on language-neutral LayerStates
//      (a table of which tensor each heteroq layer's quantizer slot applies to), shared by the
//      C++ walker below and by the Python walker through the operators registered at the end.
#include "heteroq/nn/serialize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/norm_pool.h"
#include "heteroq/nn/rnn.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/version.h"

namespace heteroq {
namespace {

using ojson = nlohmann::ordered_json;

std::string quote(const std::string& s) { return "`" + s + "`"; }

// A JSON parser's message without the bytes it quotes from a corrupt file (which need not be
// UTF-8, and Python decodes error messages as UTF-8): non-ASCII bytes become '?'.
std::string printable(const char* text) {
  std::string s = text;
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || (u < 0x20 && c != '\n')) c = '?';
  }
  return s;
}

std::string shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ------------------------------------------------------------------------------------------------
// 1. Integer representation.

// The quantizer evaluated for export: a private copy in inference mode (stochastic_binary and
// stochastic_ternary are binary and ternary at inference, as their forward() is).
QuantizerPtr inference_copy(const Quantizer& q) {
  const std::string name = q.name();
  if (name == "bernoulli") {
    throw InvalidArgument("bernoulli is random at inference too: its output has no fixed integer "
                          "form");
  }
  const SpecKeywords config = q.config();
  auto get = [&](const char* key) -> SpecValue {
    for (const auto& [k, v] : config) {
      if (k == key) return v;
    }
    return std::monostate{};
  };
  const SpecValue qnoise = get("qnoise_factor");
  if (auto qn = std::get_if<double>(&qnoise)) {
    if (*qn != 1.0) {
      throw InvalidArgument(q.to_string() + " has qnoise_factor " + format_spec_value(*qn) +
                            " < 1: its outputs lie between grid points and have no integer form "
                            "(set qnoise_factor to 1 before saving)");
    }
  }
  if (name == "stochastic_binary") return make_quantizer("binary", {}, {{"alpha", get("alpha")}});
  if (name == "stochastic_ternary") {
    return make_quantizer("ternary", {},
                          {{"alpha", get("alpha")},
                           {"threshold", get("threshold")},
                           {"number_of_unrolls", get("number_of_unrolls")}});
  }
  return get_quantizer(q.to_string());
}

// The grid of a quantizer's outputs: encoding, format and (except po2) the code range; the scale
// is filled in after the forward pass (auto scales come from it).
struct Format {
  std::string encoding;
  int64_t bits = 0, integer = 0, frac = 0;
  bool is_signed = true;
  int64_t lo = 0, hi = 0;
  at::Tensor scale;
};

double pow2(int64_t e) { return std::ldexp(1.0, static_cast<int>(e)); }

at::Tensor scalar_scale(double v, const at::Tensor& x) { return at::full({}, v, x.options()); }

// Signed or unsigned quantized_bits(bits, integer, symmetric, keep_negative) with a fixed alpha:
// `step * clamp(round(x 2^frac), lo, hi)`, or alpha * sign(x) with one signed bit.
Format fixed_bits_format(int64_t bits, int64_t integer, bool symmetric, bool keep_negative) {
  Format f;
  const int64_t ub = bits - (keep_negative ? 1 : 0);
  if (ub <= 0) {  // QKeras's sign mode: alpha * sign(x), sign(0) = +1
    f.encoding = "binary";
    f.bits = 1;
    f.lo = -1;
    f.hi = 1;
    return f;
  }
  f.encoding = "fixed_point";
  f.bits = bits;
  f.integer = integer;
  f.frac = ub - integer;
  f.is_signed = keep_negative;
  const auto m = static_cast<int64_t>(pow2(ub));
  f.lo = keep_negative ? -m + (symmetric ? 1 : 0) : 0;
  f.hi = m - 1;
  return f;
}

const SpecValue& config_value(const SpecKeywords& config, const char* key) {
  static const SpecValue none = std::monostate{};
  for (const auto& [k, v] : config) {
    if (k == key) return v;
  }
  return none;
}

// The format of `p`'s outputs for the input `x` (after p->forward(x), for the auto scales).
Format format_of(const Quantizer& p, const at::Tensor& x) {
  const SpecKeywords config = p.config();
  if (auto b = dynamic_cast<const QuantizedBits*>(&p)) {
    if (!b->auto_alpha().empty()) {
      Format f;
      f.encoding = "fixed_point";
      f.bits = b->bits();
      f.integer = b->integer();
      f.frac = b->bits() - (b->keep_negative() ? 1 : 0) - b->integer();
      const auto half = static_cast<int64_t>(pow2(b->bits() - 1)) - 1;
      f.lo = -half;
      f.hi = half;
      f.scale = b->scale();
      return f;
    }
    Format f = fixed_bits_format(b->bits(), b->integer(), b->symmetric(), b->keep_negative());
    if (!b->channel_alpha().empty()) {
      const auto& alpha = b->channel_alpha();
      at::Tensor a = at::tensor(at::ArrayRef<double>(alpha), at::TensorOptions().dtype(at::kDouble))
                         .to(x.scalar_type());
      const int64_t rank = x.dim();
      if (rank == 0 || alpha.size() == 1) {
        a = a.reshape({});
      } else {
        const int64_t axis = at::maybe_wrap_dim(b->scale_axis() ? (*b->scale_axis())[0] : 0, rank);
        std::vector<int64_t> shape(rank, 1);
        shape[axis] = a.numel();
        a = a.reshape(shape);
      }
      f.scale = a;
    } else {
      f.scale = scalar_scale(b->alpha().value_or(1.0), x);
    }
    return f;
  }
  if (auto r = dynamic_cast<const QuantizedRelu*>(&p)) {
    Format f;
    f.encoding = "fixed_point";
    f.bits = r->bits();
    f.integer = r->integer();
    if (r->enable_fast_inference()) {  // unsigned quantized_bits(bits, integer)
      f.frac = r->bits() - r->integer();
      f.is_signed = false;
      f.hi = static_cast<int64_t>(pow2(r->bits())) - 1;
    } else {
      const bool slope = r->negative_slope() != 0;
      const int64_t nsb = r->bits() - (slope ? 1 : 0);
      const auto m = static_cast<int64_t>(pow2(nsb));
      f.frac = nsb - r->integer();
      f.is_signed = slope;
      f.lo = slope ? -m : 0;
      f.hi = m - 1;
    }
    f.scale = scalar_scale(1.0, x);
    return f;
  }
  if (auto t = dynamic_cast<const QuantizedTanh*>(&p)) {
    Format f;
    f.encoding = "fixed_point";
    f.bits = t->bits();
    f.frac = t->bits() - 1;
    const auto m = static_cast<int64_t>(pow2(t->bits() - 1));
    f.lo = -m + (t->symmetric() ? 1 : 0);
    f.hi = m - 1;
    f.scale = scalar_scale(1.0, x);
    return f;
  }
  if (auto s = dynamic_cast<const QuantizedSigmoid*>(&p)) {
    Format f;
    f.encoding = "fixed_point";
    f.bits = s->bits();
    f.frac = s->bits();
    f.is_signed = false;
    f.lo = s->symmetric() ? 1 : 0;
    f.hi = static_cast<int64_t>(pow2(s->bits())) - 1;
    f.scale = scalar_scale(1.0, x);
    return f;
  }
  if (p.name() == "quantized_hswish") {  // signed quantized_bits of the hard swish
    const auto& alpha = config_value(config, "alpha");
    Format f = fixed_bits_format(std::get<int64_t>(config_value(config, "bits")),
                                 std::get<int64_t>(config_value(config, "integer")),
                                 std::get<bool>(config_value(config, "symmetric")), true);
    const double* a = std::get_if<double>(&alpha);
    f.scale = scalar_scale(a ? *a : 1.0, x);
    return f;
  }
  const bool po2 = dynamic_cast<const QuantizedPo2*>(&p) != nullptr;
  if (po2 || dynamic_cast<const QuantizedReluPo2*>(&p)) {
    Format f;
    f.encoding = "po2";
    f.bits = p.bits();
    const bool quadratic = std::get<bool>(config_value(config, "quadratic_approximation"));
    double lo = 0, hi = 0;
    if (auto q2 = dynamic_cast<const QuantizedPo2*>(&p)) {
      lo = q2->min_exp();
      hi = q2->max_exp();
    } else {
      auto r2 = dynamic_cast<const QuantizedReluPo2*>(&p);
      lo = r2->min_exp();
      hi = r2->max_exp();
    }
    const int64_t k = quadratic ? 2 : 1;
    f.lo = static_cast<int64_t>(lo) * k;
    f.hi = static_cast<int64_t>(hi) * k;
    f.is_signed = po2 || std::get<double>(config_value(config, "negative_slope")) != 0;
    return f;
  }
  if (auto bin = dynamic_cast<const Binary*>(&p)) {
    Format f;
    f.encoding = "binary";
    f.bits = 1;
    const bool use_01 = std::get<bool>(config_value(config, "use_01"));
    f.is_signed = !use_01;
    f.lo = use_01 ? 0 : -1;
    f.hi = 1;
    const auto& alpha = config_value(config, "alpha");
    if (std::holds_alternative<std::string>(alpha)) {
      f.scale = bin->scale();
    } else {
      const double* a = std::get_if<double>(&alpha);
      f.scale = scalar_scale(a ? *a : 1.0, x);
    }
    return f;
  }
  if (auto ter = dynamic_cast<const Ternary*>(&p)) {
    Format f;
    f.encoding = "ternary";
    f.bits = 2;
    f.lo = -1;
    f.hi = 1;
    const auto& alpha = config_value(config, "alpha");
    if (std::holds_alternative<std::string>(alpha)) {
      f.scale = ter->scale();
    } else {
      const double* a = std::get_if<double>(&alpha);
      f.scale = scalar_scale(a ? *a : 1.0, x);
    }
    return f;
  }
  if (p.name() == "quantized_ulaw") {
    throw InvalidArgument(p.to_string() + " has no integer form: its grid (a u-law compander) is "
                          "not uniform");
  }
  throw InvalidArgument("heteroq knows no integer form of " + p.to_string());
}

// The narrowest signed integer dtype holding [lo, hi].
at::ScalarType code_dtype(int64_t lo, int64_t hi) {
  if (lo >= -128 && hi <= 127) return at::kChar;
  if (lo >= -32768 && hi <= 32767) return at::kShort;
  if (lo >= std::numeric_limits<int32_t>::min() && hi <= std::numeric_limits<int32_t>::max()) {
    return at::kInt;
  }
  return at::kLong;
}

bool broadcastable_scale(const at::Tensor& scale, const at::Tensor& values) {
  if (scale.dim() == 0) return true;
  if (scale.dim() != values.dim()) return false;
  for (int64_t d = 0; d < scale.dim(); ++d) {
    if (scale.size(d) != 1 && scale.size(d) != values.size(d)) return false;
  }
  return true;
}

}  // namespace

std::vector<int64_t> IntegerTensor::scale_axes() const {
  std::vector<int64_t> axes;
  if (!scale.defined()) return axes;
  for (int64_t d = 0; d < scale.dim(); ++d) {
    if (scale.size(d) != 1) axes.push_back(d);
  }
  return axes;
}

at::Tensor IntegerTensor::dequantize(at::ScalarType dtype) const {
  at::NoGradGuard no_grad;
  if (encoding == "po2") {
    return (sign.to(at::kDouble) * at::exp2(values.to(at::kDouble))).to(dtype);
  }
  // Exact in float64 for every code heteroq writes (codes come from float outputs: at most 24
  // significant bits for float32), then one rounding to the scale's dtype.
  at::Tensor out = values.to(at::kDouble) * scale.to(at::kDouble);
  if (frac != 0) out = out * std::ldexp(1.0, static_cast<int>(-frac));
  return out.to(scale.scalar_type());
}

IntegerTensor quantize_to_integer(const Quantizer& q, const at::Tensor& x) {
  if (!x.defined()) throw InvalidArgument("quantize_to_integer: the tensor is undefined");
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    throw InvalidArgument("quantize_to_integer: expected a float32 or float64 tensor, got " +
                          std::string(c10::toString(x.scalar_type())));
  }
  at::NoGradGuard no_grad;
  const at::Tensor xd = x.detach();
  if (at::isnan(xd).any().item<bool>()) {
    throw InvalidArgument("quantize_to_integer: the tensor has NaN values, which no integer "
                          "format holds");
  }
  const QuantizerPtr p = inference_copy(q);
  const at::Tensor v = p->forward(xd);
  Format f = format_of(*p, xd);
  IntegerTensor it;
  it.encoding = f.encoding;
  it.bits = f.bits;
  it.integer = f.integer;
  it.frac = f.frac;
  it.is_signed = f.is_signed;
  it.min_code = f.lo;
  it.max_code = f.hi;
  auto off_grid = [&](const std::string& why) {
    return InvalidArgument("quantize_to_integer: the output of " + q.to_string() +
                           " is not on its integer grid (" + why + ")");
  };
  if (!at::isfinite(v).all().item<bool>()) throw off_grid("it has infinite values");
  if (f.encoding == "po2") {
    // v = sign 2^e exactly: frexp gives |mantissa| = 1/2. A zero is 2^min_exp underflowed (QKeras
    // maps |x| < 1e-7 to min_exp, and larger inputs round to exponents far above float's range).
    auto [mantissa, exponent] = at::frexp(v.to(at::kDouble));
    const at::Tensor zero = v == 0;
    const at::Tensor ok = zero.logical_or(mantissa.abs() == 0.5);
    if (!ok.all().item<bool>()) throw off_grid("a value is not a power of two");
    at::Tensor e = at::where(zero, at::full({}, static_cast<int32_t>(f.lo), exponent.options()),
                             exponent - 1);
    it.sign = at::where(v < 0, at::full({}, -1, at::kChar), at::full({}, 1, at::kChar));
    it.values = e.to(code_dtype(f.lo, f.hi));
  } else {
    if (!broadcastable_scale(f.scale, xd)) {
      throw off_grid("its scale of shape " + shape_string(f.scale.sizes()) +
                     " does not broadcast to the tensor's shape " + shape_string(xd.sizes()));
    }
    it.scale = f.scale.to(xd.scalar_type()).contiguous();
    const at::Tensor s = it.scale.to(at::kDouble);
    const at::Tensor step = s * std::ldexp(1.0, static_cast<int>(-f.frac));
    const at::Tensor safe = at::where(step == 0, at::ones_like(step), step);
    at::Tensor codes = at::where(step == 0, at::zeros({}, at::kDouble),
                                 at::round(v.to(at::kDouble) / safe));
    if (codes.numel() > 0) {
      const double lo = codes.min().item<double>(), hi = codes.max().item<double>();
      if (lo < static_cast<double>(f.lo) || hi > static_cast<double>(f.hi)) {
        throw off_grid("codes in [" + format_spec_value(lo) + ", " + format_spec_value(hi) +
                       "] exceed the format's range [" + std::to_string(f.lo) + ", " +
                       std::to_string(f.hi) + "]");
      }
    }
    it.values = codes.to(code_dtype(f.lo, f.hi));
  }
  if (!at::equal(it.dequantize(xd.scalar_type()), v)) {
    throw off_grid("values * scale * 2^-frac does not reproduce it exactly");
  }
  return it;
}

// ------------------------------------------------------------------------------------------------
// 2. The tensor file.

namespace {

struct DtypeInfo {
  at::ScalarType type;
  const char* name;
  size_t size;
};
const std::vector<DtypeInfo>& dtype_table() {
  static const std::vector<DtypeInfo> table = {
      {at::kDouble, "F64", 8}, {at::kFloat, "F32", 4}, {at::kHalf, "F16", 2},
      {at::kBFloat16, "BF16", 2}, {at::kLong, "I64", 8}, {at::kInt, "I32", 4},
      {at::kShort, "I16", 2}, {at::kChar, "I8", 1}, {at::kByte, "U8", 1},
      {at::kBool, "BOOL", 1}};
  return table;
}
const DtypeInfo* dtype_by_type(at::ScalarType t) {
  for (const auto& d : dtype_table()) {
    if (d.type == t) return &d;
  }
  return nullptr;
}
const DtypeInfo* dtype_by_name(const std::string& n) {
  for (const auto& d : dtype_table()) {
    if (n == d.name) return &d;
  }
  return nullptr;
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// Reverses the bytes of each `size`-byte element (big-endian hosts only).
void swap_elements(char* data, size_t bytes, size_t size) {
  if (size <= 1) return;
  for (size_t i = 0; i + size <= bytes; i += size) std::reverse(data + i, data + i + size);
}

constexpr uint64_t kMaxHeader = 100u * 1000u * 1000u;  // as the safetensors reference reader

std::string errno_text(int err) { return std::strerror(err); }

// The permission bits a new file gets (0666 minus the umask; /proc gives the umask without
// changing it).
mode_t new_file_mode() {
  mode_t mask = 022;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Umask:", 0) == 0) {
      mask = static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
      break;
    }
  }
  return 0666 & ~mask;
}

void write_all(int fd, const char* data, size_t n, const std::string& where) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw InvalidArgument(where + ": write failed: " + errno_text(errno));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

const at::Tensor* TensorFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

std::optional<std::string> TensorFile::meta(const std::string& key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  return std::nullopt;
}

void write_tensor_file(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
  const std::string where = "writing " + quote(path);
  if (path.empty()) throw InvalidArgument("write_tensor_file: the path is empty");
  // Header and payload first: nothing touches the disk until every tensor is valid.
  ojson header = ojson::object();
  if (!metadata.empty()) {
    ojson meta = ojson::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::vector<at::Tensor> payload;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__" || !names.insert(name).second) {
      throw InvalidArgument(where + ": tensor name " + quote(name) +
                            (name.empty() ? " is empty" : " is reserved or used twice"));
    }
    if (!t.defined()) throw InvalidArgument(where + ": tensor " + quote(name) + " is undefined");
    const DtypeInfo* d = dtype_by_type(t.scalar_type());
    if (!d) {
      throw InvalidArgument(where + ": tensor " + quote(name) + " has dtype " +
                            c10::toString(t.scalar_type()) + ", which the format does not hold");
    }
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * d->size;
    header[name] = {{"dtype", d->name},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    payload.push_back(c);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);

  std::string dir = ".", base = path;
  if (const auto slash = path.find_last_of('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
    base = path.substr(slash + 1);
  }
  if (base.empty()) throw InvalidArgument(where + ": the path names a directory, not a file");
  std::string tmp = (dir == "/" ? "" : dir) + "/." + base + ".tmp.XXXXXX";
  std::vector<char> tmpl(tmp.begin(), tmp.end());
  tmpl.push_back('\0');
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    throw InvalidArgument(where + ": cannot create a file in directory " + quote(dir) + ": " +
                          errno_text(errno));
  }
  tmp.assign(tmpl.data());
  try {
    struct stat st {};
    const mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : new_file_mode();
    if (::fchmod(fd, mode) != 0) {
      throw InvalidArgument(where + ": cannot set the file mode: " + errno_text(errno));
    }
    write_all(fd, length, 8, where);
    write_all(fd, text.data(), text.size(), where);
    const bool swap = !host_is_little_endian();
    for (const auto& c : payload) {
      const size_t bytes = static_cast<size_t>(c.numel()) * c.element_size();
      if (bytes == 0) continue;
      if (swap) {
        std::vector<char> copy(static_cast<const char*>(c.data_ptr()),
                               static_cast<const char*>(c.data_ptr()) + bytes);
        swap_elements(copy.data(), bytes, c.element_size());
        write_all(fd, copy.data(), bytes, where);
      } else {
        write_all(fd, static_cast<const char*>(c.data_ptr()), bytes, where);
      }
    }
    if (::fsync(fd) != 0) throw InvalidArgument(where + ": fsync failed: " + errno_text(errno));
    if (::close(fd) != 0) {
      ::unlink(tmp.c_str());
      throw InvalidArgument(where + ": close failed: " + errno_text(errno));
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw InvalidArgument(where + ": cannot rename the temporary file onto it: " + errno_text(err));
  }
  // Make the rename durable (best effort: not every file system lets a directory be fsynced).
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

TensorFile read_tensor_file(const std::string& path) {
  const std::string where = quote(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidArgument("cannot read " + where + ": " + errno_text(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InvalidArgument("cannot read " + where + ": read error");
  const uint64_t size = data.size();
  if (size < 8) {
    throw InvalidArgument(where + " is truncated or not a tensor file: " + std::to_string(size) +
                          " bytes, fewer than the 8-byte header length");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(data[i]);
  if (n == 0 || n > kMaxHeader) {
    throw InvalidArgument(where + ": the header length " + std::to_string(n) +
                          " is not a valid JSON header size (1 to 100000000 bytes)");
  }
  if (n > size - 8) {
    throw InvalidArgument(where + " is truncated or has a wrong header length: the header "
                          "length is " + std::to_string(n) + " bytes but only " +
                          std::to_string(size - 8) + " bytes follow it");
  }
  ojson header;
  try {
    header = ojson::parse(data.begin() + 8, data.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(where + ": the header is not valid JSON (" + printable(e.what()) + ")");
  }
  if (!header.is_object()) throw InvalidArgument(where + ": the header is not a JSON object");
  const uint64_t data_size = size - 8 - n;
  TensorFile file;
  struct Span {
    std::string name;
    uint64_t begin, end;
    const DtypeInfo* dtype;
    std::vector<int64_t> shape;
  };
  std::vector<Span> spans;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw InvalidArgument(where + ": \"__metadata__\" is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          throw InvalidArgument(where + ": \"__metadata__\" entry " + quote(mk) +
                                " is not a string");
        }
        file.metadata.emplace_back(mk, mv.get<std::string>());
      }
      continue;
    }
    const std::string at_entry = where + ", tensor " + quote(key);
    if (!value.is_object()) throw InvalidArgument(at_entry + ": its header entry is not an object");
    for (const auto& [field, unused] : value.items()) {
      (void)unused;
      if (field != "dtype" && field != "shape" && field != "data_offsets") {
        throw InvalidArgument(at_entry + ": unknown header field " + quote(field));
      }
    }
    if (!value.contains("dtype") || !value["dtype"].is_string()) {
      throw InvalidArgument(at_entry + ": missing or non-string \"dtype\"");
    }
    const DtypeInfo* d = dtype_by_name(value["dtype"].get<std::string>());
    if (!d) {
      throw InvalidArgument(at_entry + ": unsupported dtype " +
                            quote(value["dtype"].get<std::string>()));
    }
    if (!value.contains("shape") || !value["shape"].is_array()) {
      throw InvalidArgument(at_entry + ": missing or non-list \"shape\"");
    }
    Span s{key, 0, 0, d, {}};
    uint64_t numel = 1;
    bool too_big = false;
    for (const auto& dim : value["shape"]) {
      if (!dim.is_number_unsigned()) {
        throw InvalidArgument(at_entry + ": \"shape\" must hold non-negative integers, got " +
                              value["shape"].dump());
      }
      const uint64_t k = dim.get<uint64_t>();
      if (k > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) too_big = true;
      if (k != 0 && numel > data_size / k) too_big = true;
      numel = k == 0 ? 0 : numel * k;
      s.shape.push_back(static_cast<int64_t>(k));
    }
    const auto& off = value.contains("data_offsets") ? value["data_offsets"] : ojson();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      throw InvalidArgument(at_entry + ": \"data_offsets\" must be two non-negative integers");
    }
    s.begin = off[0].get<uint64_t>();
    s.end = off[1].get<uint64_t>();
    if (s.begin > s.end || s.end > data_size) {
      throw InvalidArgument(at_entry + ": data_offsets [" + std::to_string(s.begin) + ", " +
                            std::to_string(s.end) + "] are out of range: the data section has " +
                            std::to_string(data_size) + " bytes (truncated file?)");
    }
    if (too_big || numel * d->size != s.end - s.begin) {
      throw InvalidArgument(at_entry + ": shape " + value["shape"].dump() + " of " + d->name +
                            " needs " + (too_big ? std::string("more") : std::to_string(numel * d->size)) +
                            " bytes but data_offsets span " + std::to_string(s.end - s.begin));
    }
    spans.push_back(std::move(s));
  }
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(spans[a].begin, spans[a].end) < std::tie(spans[b].begin, spans[b].end);
  });
  uint64_t expected = 0;
  const Span* previous = nullptr;
  for (size_t i : order) {
    const Span& s = spans[i];
    if (s.begin < expected) {
      throw InvalidArgument(where + ": tensors " + quote(previous->name) + " and " +
                            quote(s.name) + " overlap (data_offsets)");
    }
    if (s.begin > expected) {
      throw InvalidArgument(where + ": bytes [" + std::to_string(expected) + ", " +
                            std::to_string(s.begin) + ") of the data belong to no tensor (before " +
                            quote(s.name) + ")");
    }
    expected = s.end;
    previous = &s;
  }
  if (expected != data_size) {
    throw InvalidArgument(where + ": " + std::to_string(data_size - expected) +
                          " bytes after the last tensor belong to no tensor");
  }
  const bool swap = !host_is_little_endian();
  const char* base = data.data() + 8 + n;
  for (const auto& s : spans) {
    at::Tensor t = at::empty(s.shape, at::TensorOptions().dtype(s.dtype->type));
    const size_t bytes = static_cast<size_t>(s.end - s.begin);
    if (bytes) {
      std::memcpy(t.data_ptr(), base + s.begin, bytes);
      if (swap) swap_elements(static_cast<char*>(t.data_ptr()), bytes, s.dtype->size);
    }
    file.tensors.emplace_back(s.name, t);
  }
  return file;
}

// ------------------------------------------------------------------------------------------------
// 3. Models.

namespace nn {
namespace detail {
namespace {

// Which tensor each quantizer slot of a heteroq layer quantizes. A tensor is quantized by `slot`
// unless the layer has a quantizer in `unless` (QBatchNorm: an inverse_quantizer replaces the
// gamma quantizer, as in QKeras). Adding a layer kind = one entry here (and, in C++, its quantizer
// slots in gather() below).
struct Slot {
  const char* tensor;
  const char* quantizer;
  const char* unless;
};
enum class Derived { None, BatchNorm, Folded };
struct Rule {
  const char* layer_class;
  std::vector<Slot> slots;
  Derived derived;
};

const std::vector<Rule>& rules() {
  static const std::vector<Rule> table = [] {
    const std::vector<Slot> kernel_bias = {{"weight", "kernel_quantizer", nullptr},
                                           {"bias", "bias_quantizer", nullptr}};
    // A trailing '*' matches any suffix.
    const std::vector<Slot> recurrent = {{"weight_ih_l*", "kernel_quantizer", nullptr},
                                         {"weight_hh_l*", "recurrent_quantizer", nullptr},
                                         {"bias_ih_l*", "bias_quantizer", nullptr},
                                         {"bias_hh_l*", "bias_quantizer", nullptr}};
    const std::vector<Slot> bn = {{"weight", "gamma_quantizer", "inverse_quantizer"},
                                  {"bias", "beta_quantizer", nullptr}};
    return std::vector<Rule>{
        {"QLinear", kernel_bias, Derived::None},
        {"QConv1d", kernel_bias, Derived::None},
        {"QConv2d", kernel_bias, Derived::None},
        {"QConvTranspose2d", kernel_bias, Derived::None},
        // Python's QDepthwiseConv2d is a QConv2d (C++'s holds one, `conv`, saved as a QConv2d).
        {"QDepthwiseConv2d", kernel_bias, Derived::None},
        {"QBatchNorm1d", bn, Derived::BatchNorm},
        {"QBatchNorm2d", bn, Derived::BatchNorm},
        {"QConv2dBatchNorm", {}, Derived::Folded},
        {"QLinearBatchNorm", {}, Derived::Folded},
        // Recurrent layers: PyTorch's per-layer/direction names (weight_ih_l0, ..._reverse).
        {"QSimpleRNN", recurrent, Derived::None},
        {"QLSTM", recurrent, Derived::None},
        {"QGRU", recurrent, Derived::None},
    };
  }();
  return table;
}

bool slot_matches(const std::string& pattern, const std::string& name) {
  if (!pattern.empty() && pattern.back() == '*') {
    return name.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  }
  return name == pattern;
}

const Rule* rule_for(const std::string& layer_class) {
  for (const auto& r : rules()) {
    if (layer_class == r.layer_class) return &r;
  }
  return nullptr;
}

struct Record {
  std::string layer, layer_class, tensor, role;
  at::Tensor value;
  QuantizerPtr quantizer;
  int64_t index = -1;  // position in the restored list (parameters and buffers)
  std::string entry() const { return layer.empty() ? tensor : layer + "." + tensor; }
  std::string describe() const {
    return "entry " + quote(entry()) + " (layer " + quote(layer.empty() ? "<root>" : layer) +
           ", " + layer_class + ", " + role + " " + quote(tensor) + ")";
  }
};

QuantizerPtr find_quantizer(const LayerState& s, const char* slot) {
  if (!slot) return nullptr;
  for (const auto& [k, q] : s.quantizers) {
    if (k == slot) return q;
  }
  return nullptr;
}

at::Tensor find_tensor(const std::vector<std::pair<std::string, at::Tensor>>& v, const char* name) {
  for (const auto& [k, t] : v) {
    if (k == name) return t;
  }
  return at::Tensor();
}

std::optional<at::Tensor> opt(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t.detach()) : std::nullopt;
}

// The records of every layer: its parameters and buffers (restored by loading), and the derived
// tensors a deployment needs (folded weights, quantized batch-norm statistics).
std::vector<Record> plan(const std::vector<LayerState>& layers) {
  at::NoGradGuard no_grad;
  std::vector<Record> out;
  int64_t index = 0;
  for (const auto& s : layers) {
    const Rule* rule = rule_for(s.class_name);
    const std::string who = "layer " + quote(s.path.empty() ? "<root>" : s.path) + " (" +
                            s.class_name + ")";
    bool has_quantizer = false;
    for (const auto& [k, q] : s.quantizers) has_quantizer = has_quantizer || q != nullptr;
    if (!rule && has_quantizer && (!s.parameters.empty() || !s.buffers.empty())) {
      throw InvalidArgument(who + " has quantizers and tensors, but the quantized-weights saver "
                            "does not know which tensors its quantizers apply to (see "
                            "docs/saving.md, \"Adding a layer\")");
    }
    for (const auto& [name, t] : s.parameters) {
      Record r{s.path, s.class_name, name, "parameter", t.detach(), nullptr, index++};
      if (rule) {
        for (const auto& slot : rule->slots) {
          if (slot_matches(slot.tensor, name) && !find_quantizer(s, slot.unless)) {
            r.quantizer = find_quantizer(s, slot.quantizer);
          }
        }
      }
      out.push_back(std::move(r));
    }
    for (const auto& [name, t] : s.buffers) {
      out.push_back({s.path, s.class_name, name, "buffer", t.detach(), nullptr, index++});
    }
    if (!rule || rule->derived == Derived::None) continue;
    if (!s.eps) throw InvalidArgument(who + ": its batch-norm epsilon is missing");
    const double eps = *s.eps;
    const at::Tensor rm = find_tensor(s.buffers, "running_mean");
    const at::Tensor rv = find_tensor(s.buffers, "running_var");
    auto derived = [&](const char* name, const at::Tensor& value, const char* slot) {
      out.push_back({s.path, s.class_name, name, "derived", value, find_quantizer(s, slot), -1});
    };
    if (rule->derived == Derived::BatchNorm) {
      const at::Tensor gamma = find_tensor(s.parameters, "weight");
      if (rm.defined() && find_quantizer(s, "mean_quantizer")) {
        derived("quantized_running_mean", rm.detach(), "mean_quantizer");
      }
      if (rv.defined()) {
        if (find_quantizer(s, "inverse_quantizer")) {
          derived("inverse", ops::_bn_inverse(rv.detach(), opt(gamma), eps), "inverse_quantizer");
        } else if (find_quantizer(s, "variance_quantizer")) {
          derived("quantized_running_var", rv.detach(), "variance_quantizer");
        }
      }
    } else {  // Folded: QKeras's get_folded_weights, quantized as the layer's forward does
      const at::Tensor w = find_tensor(s.parameters, "weight");
      if (!w.defined() || !rm.defined() || !rv.defined()) {
        throw InvalidArgument(who + ": missing weight or running statistics");
      }
      const at::Tensor gamma = find_tensor(s.parameters, "gamma");
      derived("folded_weight", ops::_bn_fold_weight(w.detach(), rv.detach(), opt(gamma), eps),
              "kernel_quantizer");
      derived("folded_bias",
              ops::_bn_fold_bias(opt(find_tensor(s.parameters, "bias")), rm.detach(), rv.detach(),
                                 opt(gamma), opt(find_tensor(s.parameters, "beta")), eps),
              "bias_quantizer");
    }
  }
  return out;
}

std::string dtype_name(at::ScalarType t) {
  const DtypeInfo* d = dtype_by_type(t);
  return d ? d->name : c10::toString(t);
}

// The float a quantized parameter is restored to: its quantized value when the quantizer maps it
// onto itself, else the quantizer's input grid value (a quantizer that multiplies by a fixed
// alpha), else the float tensor itself (stored then).
std::string choose_restore(const Quantizer& p, const IntegerTensor& it, const at::Tensor& v) {
  if (at::equal(p.forward(v), v)) return "values";
  if (it.encoding != "po2") {
    const at::Tensor grid =
        (it.values.to(at::kDouble) * std::ldexp(1.0, static_cast<int>(-it.frac))).to(v.scalar_type());
    if (at::equal(p.forward(grid), v)) return "unscaled";
  }
  return "float";
}

at::Tensor unscaled(const IntegerTensor& it, at::ScalarType dtype) {
  return (it.values.to(at::kDouble) * std::ldexp(1.0, static_cast<int>(-it.frac))).to(dtype);
}

}  // namespace

std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>
quantized_layer_table() {
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> out;
  for (const auto& r : rules()) {
    std::vector<std::pair<std::string, std::string>> slots;
    for (const auto& s : r.slots) slots.emplace_back(s.tensor, s.quantizer);
    if (r.derived == Derived::Folded) {
      slots.emplace_back("folded_weight", "kernel_quantizer");
      slots.emplace_back("folded_bias", "bias_quantizer");
    } else if (r.derived == Derived::BatchNorm) {
      slots.emplace_back("quantized_running_mean", "mean_quantizer");
      slots.emplace_back("quantized_running_var", "variance_quantizer");
      slots.emplace_back("inverse", "inverse_quantizer");
    }
    out.emplace_back(r.layer_class, std::move(slots));
  }
  return out;
}

std::vector<SavedTensor> save_layers(const std::vector<LayerState>& layers,
                                     const std::string& path) {
  at::NoGradGuard no_grad;
  const std::vector<Record> records = plan(layers);
  std::vector<std::pair<std::string, at::Tensor>> file;
  std::set<std::string> names;
  auto add = [&](const std::string& name, const at::Tensor& t, const Record& r) {
    if (!names.insert(name).second) {
      throw InvalidArgument("save_quantized_weights: the file name " + quote(name) + " of " +
                            r.describe() + " is used twice (rename the tensor or module)");
    }
    file.emplace_back(name, t);
  };
  ojson entries = ojson::object();
  std::vector<SavedTensor> saved;
  for (const auto& r : records) {
    SavedTensor st;
    st.entry = r.entry();
    st.layer = r.layer;
    st.layer_class = r.layer_class;
    st.tensor = r.tensor;
    st.role = r.role;
    ojson info = {{"layer", r.layer}, {"class", r.layer_class}, {"tensor", r.tensor},
                  {"role", r.role}, {"dtype", dtype_name(r.value.scalar_type())}};
    if (!r.quantizer) {
      info["encoding"] = "float";
      add(st.entry, r.value, r);
      st.value = r.value;
      st.restore = r.role == "derived" ? "" : "float";
    } else {
      st.quantizer = r.quantizer->to_string();
      IntegerTensor it;
      QuantizerPtr p;
      try {
        it = quantize_to_integer(*r.quantizer, r.value);
        p = inference_copy(*r.quantizer);
      } catch (const InvalidArgument& e) {
        throw InvalidArgument("save_quantized_weights: " + r.describe() + ", quantizer " +
                              st.quantizer + ": " + e.what());
      }
      st.value = it.dequantize(r.value.scalar_type());
      info["quantizer"] = st.quantizer;
      info["quantizer_config"] = ojson::parse(r.quantizer->to_json());
      info["encoding"] = it.encoding;
      info["bits"] = it.bits;
      info["integer"] = it.integer;
      info["frac"] = it.frac;
      info["signed"] = it.is_signed;
      info["min_code"] = it.min_code;
      info["max_code"] = it.max_code;
      info["values"] = st.entry;
      add(st.entry, it.values, r);
      if (it.encoding == "po2") {
        info["sign"] = st.entry + ":sign";
        add(st.entry + ":sign", it.sign, r);
      } else {
        info["scale"] = st.entry + ":scale";
        info["scale_axes"] = it.scale_axes();
        add(st.entry + ":scale", it.scale, r);
      }
      if (r.role != "derived") {
        st.restore = choose_restore(*p, it, st.value);
        info["restore"] = st.restore;
        if (st.restore == "float") {
          info["float"] = st.entry + ":float";
          add(st.entry + ":float", r.value, r);
        }
      }
      st.integer = std::move(it);
    }
    entries[st.entry] = info;
    saved.push_back(std::move(st));
  }
  write_tensor_file(path, file,
                    {{"format", nn::kQuantizedWeightsFormat},
                     {"format_version", std::to_string(nn::kQuantizedWeightsVersion)},
                     {"heteroq_version", HETEROQ_VERSION_STRING},
                     {"entries", entries.dump()}});
  return saved;
}

std::vector<at::Tensor> load_layers(const std::vector<LayerState>& layers,
                                    const std::string& path) {
  at::NoGradGuard no_grad;
  const TensorFile file = read_tensor_file(path);
  const std::string where = quote(path);
  const auto format = file.meta("format");
  if (!format || *format != kQuantizedWeightsFormat) {
    throw InvalidArgument(where + " is not a heteroq quantized-weights file (its \"__metadata__\" "
                          "has no \"format\": \"" + std::string(kQuantizedWeightsFormat) + "\")");
  }
  const auto version = file.meta("format_version");
  if (!version || *version != std::to_string(kQuantizedWeightsVersion)) {
    throw InvalidArgument(where + ": format_version " + (version ? *version : "(missing)") +
                          " is not supported (this heteroq reads version " +
                          std::to_string(kQuantizedWeightsVersion) + ")");
  }
  ojson entries;
  try {
    entries = ojson::parse(file.meta("entries").value_or(""));
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(where + ": \"__metadata__\" \"entries\" is not valid JSON (" +
                          printable(e.what()) + ")");
  }
  if (!entries.is_object()) {
    throw InvalidArgument(where + ": \"__metadata__\" \"entries\" is not a JSON object");
  }
  const std::vector<Record> records = plan(layers);
  std::set<std::string> expected;
  for (const auto& r : records) expected.insert(r.entry());
  for (const auto& [name, unused] : entries.items()) {
    (void)unused;
    if (!expected.count(name)) {
      throw InvalidArgument(where + ": entry " + quote(name) + " matches no tensor of the model "
                            "(a layer or tensor the model lacks?)");
    }
  }
  std::set<std::string> used;  // file tensors the entries reference
  int64_t count = 0;
  for (const auto& r : records) count = std::max(count, r.index + 1);
  std::vector<at::Tensor> restored(static_cast<size_t>(count));
  for (const auto& r : records) {
    const std::string at_entry = where + ", " + r.describe();
    if (!entries.contains(r.entry())) {
      throw InvalidArgument(where + " has no " + r.describe() + " (saved from another model?)");
    }
    const ojson& info = entries[r.entry()];
    auto field = [&](const char* key) -> const ojson& {
      if (!info.is_object() || !info.contains(key)) {
        throw InvalidArgument(at_entry + ": its metadata has no " + quote(key));
      }
      return info[key];
    };
    auto text = [&](const char* key) {
      const ojson& v = field(key);
      if (!v.is_string()) throw InvalidArgument(at_entry + ": metadata " + quote(key) + " is not a string");
      return v.get<std::string>();
    };
    auto integer = [&](const char* key) {
      const ojson& v = field(key);
      if (!v.is_number_integer()) {
        throw InvalidArgument(at_entry + ": metadata " + quote(key) + " is not an integer");
      }
      return v.get<int64_t>();
    };
    auto tensor = [&](const std::string& name) {
      const at::Tensor* t = file.find(name);
      if (!t) throw InvalidArgument(at_entry + ": the file has no tensor " + quote(name));
      used.insert(name);
      return *t;
    };
    if (text("class") != r.layer_class || text("layer") != r.layer || text("tensor") != r.tensor ||
        text("role") != r.role) {
      throw InvalidArgument(at_entry + ": the file saved it as " + text("role") + " " +
                            quote(text("tensor")) + " of layer " + quote(text("layer")) + " (" +
                            text("class") + ")");
    }
    const std::string file_quantizer = info.contains("quantizer") ? text("quantizer") : "";
    const std::string model_quantizer = r.quantizer ? r.quantizer->to_string() : "";
    if (file_quantizer != model_quantizer) {
      throw InvalidArgument(at_entry + ": the file was saved with quantizer " +
                            (file_quantizer.empty() ? "None" : file_quantizer) +
                            ", the model has " +
                            (model_quantizer.empty() ? "None" : model_quantizer));
    }
    const at::ScalarType dtype = r.value.scalar_type();
    auto check_shape = [&](const at::Tensor& t, const std::string& what) {
      if (!t.sizes().equals(r.value.sizes())) {
        throw InvalidArgument(at_entry + ": " + what + " has shape " + shape_string(t.sizes()) +
                              ", the model's tensor " + shape_string(r.value.sizes()));
      }
    };
    auto check_dtype = [&](const at::Tensor& t, const std::string& what) {
      if (t.scalar_type() != dtype) {
        throw InvalidArgument(at_entry + ": " + what + " is " + dtype_name(t.scalar_type()) +
                              ", the model's tensor " + dtype_name(dtype));
      }
    };
    const std::string encoding = text("encoding");
    if (!r.quantizer) {
      if (encoding != "float") {
        throw InvalidArgument(at_entry + ": encoding " + quote(encoding) + " for a tensor "
                              "without quantizer");
      }
      const at::Tensor t = tensor(r.entry());
      check_dtype(t, "the stored tensor");
      check_shape(t, "the stored tensor");
      if (r.index >= 0) restored[static_cast<size_t>(r.index)] = t;
      continue;
    }
    IntegerTensor it;
    it.encoding = encoding;
    if (encoding != "fixed_point" && encoding != "binary" && encoding != "ternary" &&
        encoding != "po2") {
      throw InvalidArgument(at_entry + ": unknown encoding " + quote(encoding));
    }
    it.bits = integer("bits");
    it.integer = integer("integer");
    it.frac = integer("frac");
    it.min_code = integer("min_code");
    it.max_code = integer("max_code");
    if (!field("signed").is_boolean()) throw InvalidArgument(at_entry + ": metadata `signed` is not a bool");
    it.is_signed = field("signed").get<bool>();
    if (it.frac < -1024 || it.frac > 1024 || it.min_code > it.max_code) {
      throw InvalidArgument(at_entry + ": invalid format (frac " + std::to_string(it.frac) +
                            ", codes [" + std::to_string(it.min_code) + ", " +
                            std::to_string(it.max_code) + "])");
    }
    it.values = tensor(text("values"));
    if (!at::isIntegralType(it.values.scalar_type(), /*includeBool=*/false)) {
      throw InvalidArgument(at_entry + ": the values are " + dtype_name(it.values.scalar_type()) +
                            ", not integers");
    }
    check_shape(it.values, "the integer values");
    if (it.values.numel() > 0) {
      const int64_t lo = it.values.min().item<int64_t>(), hi = it.values.max().item<int64_t>();
      if (lo < it.min_code || hi > it.max_code) {
        throw InvalidArgument(at_entry + ": codes in [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "] exceed the format's range [" +
                              std::to_string(it.min_code) + ", " + std::to_string(it.max_code) +
                              "]");
      }
    }
    if (encoding == "po2") {
      it.sign = tensor(text("sign"));
      check_shape(it.sign, "the signs");
      if (!at::isIntegralType(it.sign.scalar_type(), false) ||
          !(it.sign.abs() == 1).all().item<bool>()) {
        throw InvalidArgument(at_entry + ": the signs must be integers +1 or -1");
      }
    } else {
      it.scale = tensor(text("scale"));
      check_dtype(it.scale, "the scale");
      if (!broadcastable_scale(it.scale, it.values)) {
        throw InvalidArgument(at_entry + ": the scale's shape " + shape_string(it.scale.sizes()) +
                              " does not broadcast to the tensor's " +
                              shape_string(it.values.sizes()));
      }
      if (!(at::isfinite(it.scale).all().item<bool>() && (it.scale >= 0).all().item<bool>())) {
        throw InvalidArgument(at_entry + ": the scale has negative or non-finite values");
      }
    }
    const at::Tensor value = it.dequantize(dtype);
    if (r.role == "derived") continue;  // exported for deployment, not restored
    const std::string how = text("restore");
    at::Tensor restore;
    if (how == "values") {
      restore = value;
    } else if (how == "unscaled" && encoding != "po2") {
      restore = unscaled(it, dtype);
    } else if (how == "float") {
      restore = tensor(text("float"));
      check_dtype(restore, "the stored float tensor");
      check_shape(restore, "the stored float tensor");
    } else {
      throw InvalidArgument(at_entry + ": unknown restore method " + quote(how));
    }
    QuantizerPtr p;
    try {
      p = inference_copy(*r.quantizer);
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(at_entry + ": " + e.what());
    }
    if (!at::equal(p->forward(restore), value)) {
      throw InvalidArgument(at_entry + ": " + model_quantizer + " does not reproduce the stored "
                            "integer values from the restored tensor (the file was modified?)");
    }
    restored[static_cast<size_t>(r.index)] = restore;
  }
  for (const auto& [name, unused] : file.tensors) {
    (void)unused;
    if (!used.count(name)) {
      throw InvalidArgument(where + ": tensor " + quote(name) + " belongs to no entry of the "
                            "metadata");
    }
  }
  return restored;
}

// ------------------------------------------------------------------------------------------------
// The C++ walker.

namespace {

std::string demangled_class(const torch::nn::Module& m) {
  std::string name = m.name();
  if (const auto colon = name.rfind("::"); colon != std::string::npos) name = name.substr(colon + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0) {
    name.resize(name.size() - 4);
  }
  return name;
}

template <typename T>
const T* as(const torch::nn::Module& m) {
  return dynamic_cast<const T*>(&m);
}

LayerState gather_one(const std::string& path, const torch::nn::Module& m) {
  LayerState s;
  s.path = path;
  auto slot = [&](const char* name, const QuantizerArg& q) {
    if (q) s.quantizers.emplace_back(name, q.get());
  };
  auto recurrent_slots = [&](const auto& o) {
    slot("kernel_quantizer", o.kernel_quantizer());
    slot("recurrent_quantizer", o.recurrent_quantizer());
    slot("bias_quantizer", o.bias_quantizer());
    slot("state_quantizer", o.state_quantizer());
  };
  if (auto l = as<QLinearImpl>(m)) {
    s.class_name = "QLinear";
    slot("kernel_quantizer", l->options.kernel_quantizer());
    slot("bias_quantizer", l->options.bias_quantizer());
  } else if (auto c1 = as<QConv1dImpl>(m)) {
    s.class_name = "QConv1d";
    slot("kernel_quantizer", c1->options.kernel_quantizer());
    slot("bias_quantizer", c1->options.bias_quantizer());
  } else if (auto c2 = as<QConv2dImpl>(m)) {
    s.class_name = "QConv2d";
    slot("kernel_quantizer", c2->options.kernel_quantizer());
    slot("bias_quantizer", c2->options.bias_quantizer());
  } else if (auto ct = as<QConvTranspose2dImpl>(m)) {
    s.class_name = "QConvTranspose2d";
    slot("kernel_quantizer", ct->options.kernel_quantizer());
    slot("bias_quantizer", ct->options.bias_quantizer());
  } else if (auto dw = as<QDepthwiseConv2dImpl>(m)) {
    s.class_name = "QDepthwiseConv2d";  // its tensors are in its QConv2d `conv`
    slot("depthwise_quantizer", dw->options.depthwise_quantizer());
    slot("bias_quantizer", dw->options.bias_quantizer());
  } else if (auto s1 = as<QSeparableConv1dImpl>(m)) {
    s.class_name = "QSeparableConv1d";  // tensors in its `depthwise` and `pointwise` QConv1d
    slot("depthwise_quantizer", s1->options.depthwise_quantizer());
    slot("pointwise_quantizer", s1->options.pointwise_quantizer());
    slot("bias_quantizer", s1->options.bias_quantizer());
  } else if (auto s2 = as<QSeparableConv2dImpl>(m)) {
    s.class_name = "QSeparableConv2d";
    slot("depthwise_quantizer", s2->options.depthwise_quantizer());
    slot("pointwise_quantizer", s2->options.pointwise_quantizer());
    slot("bias_quantizer", s2->options.bias_quantizer());
  } else if (as<QBatchNorm1dImpl>(m) || as<QBatchNorm2dImpl>(m)) {
    const QBatchNormOptions& o = as<QBatchNorm1dImpl>(m) ? as<QBatchNorm1dImpl>(m)->options
                                                         : as<QBatchNorm2dImpl>(m)->options;
    s.class_name = as<QBatchNorm1dImpl>(m) ? "QBatchNorm1d" : "QBatchNorm2d";
    slot("gamma_quantizer", o.gamma_quantizer());
    slot("beta_quantizer", o.beta_quantizer());
    slot("mean_quantizer", o.mean_quantizer());
    slot("variance_quantizer", o.variance_quantizer());
    slot("inverse_quantizer", o.inverse_quantizer());
    s.eps = o.eps();
  } else if (auto fc = as<QConv2dBatchNormImpl>(m)) {
    s.class_name = "QConv2dBatchNorm";
    slot("kernel_quantizer", fc->options.kernel_quantizer());
    slot("bias_quantizer", fc->options.bias_quantizer());
    s.eps = fc->options.folding().eps();
  } else if (auto fl = as<QLinearBatchNormImpl>(m)) {
    s.class_name = "QLinearBatchNorm";
    slot("kernel_quantizer", fl->options.kernel_quantizer());
    slot("bias_quantizer", fl->options.bias_quantizer());
    s.eps = fl->options.folding().eps();
  } else if (auto r = as<QSimpleRNNImpl>(m)) {
    s.class_name = "QSimpleRNN";
    recurrent_slots(r->options);
  } else if (auto l2 = as<QLSTMImpl>(m)) {
    s.class_name = "QLSTM";
    recurrent_slots(l2->options);
  } else if (auto g2 = as<QGRUImpl>(m)) {
    s.class_name = "QGRU";
    recurrent_slots(g2->options);
  } else if (auto a = as<QActivationImpl>(m)) {
    s.class_name = "QActivation";
    if (a->quantizer()) s.quantizers.emplace_back("quantizer", a->quantizer());
  } else if (auto p = as<QAvgPool2dImpl>(m)) {
    s.class_name = "QAvgPool2d";
    slot("average_quantizer", p->options.average_quantizer());
    slot("activation", p->options.activation());
  } else if (auto g = as<QGlobalAvgPool2dImpl>(m)) {
    s.class_name = "QGlobalAvgPool2d";
    slot("average_quantizer", g->options.average_quantizer());
    slot("activation", g->options.activation());
  } else {
    s.class_name = demangled_class(m);
  }
  for (const auto& item : m.named_parameters(/*recurse=*/false)) {
    if (item.value().defined()) s.parameters.emplace_back(item.key(), item.value());
  }
  for (const auto& item : m.named_buffers(/*recurse=*/false)) {
    if (item.value().defined()) s.buffers.emplace_back(item.key(), item.value());
  }
  return s;
}

std::vector<LayerState> gather(const torch::nn::Module& model) {
  std::vector<LayerState> out;
  out.push_back(gather_one("", model));
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    out.push_back(gather_one(item.key(), *item.value()));
  }
  return out;
}

}  // namespace
}  // namespace detail

std::vector<SavedTensor> save_quantized_weights(const torch::nn::Module& model,
                                                const std::string& path) {
  return detail::save_layers(detail::gather(model), path);
}

void load_quantized_weights(torch::nn::Module& model, const std::string& path) {
  const std::vector<detail::LayerState> layers = detail::gather(model);
  const std::vector<at::Tensor> values = detail::load_layers(layers, path);
  // Everything matched: copy (same shapes and dtypes, so the copies cannot fail half-way).
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (const auto& s : layers) {
    for (const auto& item : s.parameters) item.second.copy_(values[i++]);
    for (const auto& item : s.buffers) item.second.copy_(values[i++]);
  }
}

}  // namespace nn

// ------------------------------------------------------------------------------------------------
// Operators for the Python API (tensors never cross pybind11).

namespace {

// Errors cross the dispatcher as c10::ValueError (Python: ValueError).
template <typename F>
auto checked(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InvalidArgument& e) {
    C10_THROW_ERROR(ValueError, e.what());
  }
}

// Python's module walk: [{"path", "class", "parameters": [names], "buffers": [names],
// "quantizers": {slot: spec}, "eps": number|null}], the tensors in that order.
std::vector<nn::detail::LayerState> decode_layers(const std::string& layers_json,
                                                  const std::vector<at::Tensor>& tensors) {
  ojson j;
  try {
    j = ojson::parse(layers_json);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(std::string("quantized weights: the layer list is not valid JSON (") +
                          e.what() + ")");
  }
  if (!j.is_array()) throw InvalidArgument("quantized weights: the layer list is not a JSON list");
  std::vector<nn::detail::LayerState> out;
  size_t next = 0;
  auto take = [&](const ojson& names, std::vector<std::pair<std::string, at::Tensor>>& into) {
    for (const auto& n : names) {
      if (next >= tensors.size()) throw InvalidArgument("quantized weights: too few tensors");
      into.emplace_back(n.get<std::string>(), tensors[next++]);
    }
  };
  try {
    for (const auto& layer : j) {
      nn::detail::LayerState s;
      s.path = layer.at("path").get<std::string>();
      s.class_name = layer.at("class").get<std::string>();
      take(layer.at("parameters"), s.parameters);
      take(layer.at("buffers"), s.buffers);
      for (const auto& [slot, spec] : layer.at("quantizers").items()) {
        try {
          s.quantizers.emplace_back(slot, get_quantizer(spec.get<std::string>()));
        } catch (const InvalidArgument& e) {
          throw InvalidArgument("layer " + quote(s.path) + ", " + slot + ": " + e.what());
        }
      }
      if (layer.contains("eps") && !layer.at("eps").is_null()) s.eps = layer.at("eps").get<double>();
      out.push_back(std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(std::string("quantized weights: malformed layer list (") + e.what() + ")");
  }
  if (next != tensors.size()) throw InvalidArgument("quantized weights: too many tensors");
  return out;
}

std::tuple<std::string, std::vector<at::Tensor>> save_op(const std::string& path,
                                                         const std::string& layers,
                                                         const std::vector<at::Tensor>& tensors) {
  return checked([&] {
    const auto saved = nn::detail::save_layers(decode_layers(layers, tensors), path);
    // What the file holds, as the Python dict needs it: the header's entries and the tensors.
    const TensorFile file = read_tensor_file(path);
    ojson out = {{"entries", ojson::parse(file.meta("entries").value_or("{}"))},
                 {"tensors", ojson::array()}};
    std::vector<at::Tensor> ts;
    for (const auto& [name, t] : file.tensors) {
      out["tensors"].push_back(name);
      ts.push_back(t);
    }
    (void)saved;
    return std::make_tuple(out.dump(), ts);
  });
}

std::vector<at::Tensor> load_op(const std::string& path, const std::string& layers,
                                const std::vector<at::Tensor>& tensors) {
  return checked([&] { return nn::detail::load_layers(decode_layers(layers, tensors), path); });
}

std::tuple<std::string, std::vector<at::Tensor>> read_op(const std::string& path) {
  return checked([&] {
    const TensorFile file = read_tensor_file(path);
    ojson meta = ojson::object();
    for (const auto& [k, v] : file.metadata) meta[k] = v;
    ojson out = {{"metadata", meta}, {"tensors", ojson::array()}};
    std::vector<at::Tensor> ts;
    for (const auto& [name, t] : file.tensors) {
      out["tensors"].push_back(name);
      ts.push_back(t);
    }
    return std::make_tuple(out.dump(), ts);
  });
}

void write_op(const std::string& path, const std::vector<std::string>& names,
              const std::vector<at::Tensor>& tensors, const std::string& metadata_json) {
  checked([&] {
    if (names.size() != tensors.size()) {
      throw InvalidArgument("write_tensor_file: " + std::to_string(names.size()) + " names for " +
                            std::to_string(tensors.size()) + " tensors");
    }
    ojson meta;
    try {
      meta = ojson::parse(metadata_json);
    } catch (const nlohmann::json::exception& e) {
      throw InvalidArgument(std::string("write_tensor_file: metadata is not valid JSON (") +
                            e.what() + ")");
    }
    std::vector<std::pair<std::string, std::string>> md;
    for (const auto& [k, v] : meta.items()) {
      if (!v.is_string()) throw InvalidArgument("write_tensor_file: metadata " + quote(k) + " is not a string");
      md.emplace_back(k, v.get<std::string>());
    }
    std::vector<std::pair<std::string, at::Tensor>> ts;
    for (size_t i = 0; i < names.size(); ++i) ts.emplace_back(names[i], tensors[i]);
    write_tensor_file(path, ts, md);
    return 0;
  });
}

std::tuple<std::string, at::Tensor, at::Tensor, at::Tensor> to_integer_op(
    const at::Tensor& x, const std::string& quantizer) {
  return checked([&] {
    const IntegerTensor it = quantize_to_integer(*get_quantizer(quantizer), x);
    const ojson info = {{"encoding", it.encoding}, {"bits", it.bits},
                        {"integer", it.integer},   {"frac", it.frac},
                        {"signed", it.is_signed},  {"min_code", it.min_code},
                        {"max_code", it.max_code}, {"scale_axes", it.scale_axes()}};
    // A missing part (po2: the scale; others: the sign) is an empty tensor.
    const at::Tensor none = at::empty({0}, x.options());
    return std::make_tuple(info.dump(), it.values, it.scale.defined() ? it.scale : none,
                           it.sign.defined() ? it.sign : none);
  });
}

at::Tensor dequantize_op(const at::Tensor& values, const c10::optional<at::Tensor>& scale,
                         const c10::optional<at::Tensor>& sign, const std::string& encoding,
                         int64_t frac, c10::ScalarType dtype) {
  return checked([&] {
    IntegerTensor it;
    it.encoding = encoding;
    it.values = values;
    it.frac = frac;
    if (encoding == "po2") {
      if (!sign.has_value()) throw InvalidArgument("dequantize: po2 values need their signs");
      it.sign = *sign;
    } else {
      if (!scale.has_value()) throw InvalidArgument("dequantize: " + encoding + " values need a scale");
      if (!broadcastable_scale(*scale, values)) {
        throw InvalidArgument("dequantize: the scale's shape " + shape_string(scale->sizes()) +
                              " does not broadcast to " + shape_string(values.sizes()));
      }
      it.scale = *scale;
    }
    return it.dequantize(dtype);
  });
}

}  // namespace
}  // namespace heteroq

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("_save_quantized_weights(str path, str layers, Tensor[] tensors) -> (str, Tensor[])",
        &heteroq::save_op);
  m.def("_load_quantized_weights(str path, str layers, Tensor[] tensors) -> Tensor[]",
        &heteroq::load_op);
  m.def("_read_tensor_file(str path) -> (str, Tensor[])", &heteroq::read_op);
  m.def("_write_tensor_file(str path, str[] names, Tensor[] tensors, str metadata) -> ()",
        &heteroq::write_op);
  m.def("_quantize_to_integer(Tensor x, str quantizer) -> (str, Tensor, Tensor, Tensor)",
        &heteroq::to_integer_op);
  m.def("_integer_dequantize(Tensor values, Tensor? scale, Tensor? sign, str encoding, int frac, "
        "ScalarType dtype) -> Tensor",
        &heteroq::dequantize_op);
}
