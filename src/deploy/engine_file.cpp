// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Engine::save / Engine::load: the program in a safetensors file (the container of the
// quantized-weights format, docs/saving.md), read and written without LibTorch.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "heteroq/deploy/engine.h"
#include "heteroq/version.h"

namespace heteroq::deploy {
namespace {

using ojson = nlohmann::ordered_json;

constexpr const char* kFormat = "heteroq.deploy_engine";
// 2: gather stages, table requantizers, pad_*_end, cost_bits; 3: recurrent stages (1 and 2 are read too)
constexpr int kVersion = 3;

struct Blob {
  std::string dtype;  // "I16", "I32", "I64"
  std::vector<int64_t> shape;
  std::vector<int64_t> values;
};

int itemsize(const std::string& dtype) {
  if (dtype == "I8") return 1;
  if (dtype == "I16") return 2;
  if (dtype == "I32") return 4;
  if (dtype == "I64") return 8;
  return 0;
}

std::string narrowest(const std::vector<int64_t>& v) {
  int64_t lo = 0, hi = 0;
  for (int64_t x : v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  if (lo >= -128 && hi <= 127) return "I8";
  if (lo >= -32768 && hi <= 32767) return "I16";
  if (lo >= std::numeric_limits<int32_t>::min() && hi <= std::numeric_limits<int32_t>::max()) return "I32";
  return "I64";
}

void put_le(std::string& out, int64_t v, int size) {
  const auto u = static_cast<uint64_t>(v);
  for (int b = 0; b < size; ++b) out.push_back(static_cast<char>((u >> (8 * b)) & 0xff));
}

int64_t get_le(const unsigned char* p, int size) {
  uint64_t u = 0;
  for (int b = 0; b < size; ++b) u |= static_cast<uint64_t>(p[b]) << (8 * b);
  if (size < 8 && (u >> (8 * size - 1)) & 1) u |= ~uint64_t(0) << (8 * size);  // sign-extend
  return static_cast<int64_t>(u);
}

// SHA-256 (FIPS 180-4) of a byte string, as 64 lowercase hex digits: the checksum of the data
// section (__metadata__.data_sha256).
std::string sha256_hex(const std::string& msg) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  std::string m = msg;
  const uint64_t bits = static_cast<uint64_t>(msg.size()) * 8;
  m.push_back(static_cast<char>(0x80));
  while (m.size() % 64 != 56) m.push_back('\0');
  for (int b = 7; b >= 0; --b) m.push_back(static_cast<char>((bits >> (8 * b)) & 0xff));
  const auto* u = reinterpret_cast<const unsigned char*>(m.data());
  for (size_t blk = 0; blk < m.size(); blk += 64) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t) {
      const unsigned char* q = u + blk + 4 * t;
      w[t] = (uint32_t(q[0]) << 24) | (uint32_t(q[1]) << 16) | (uint32_t(q[2]) << 8) | uint32_t(q[3]);
    }
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[t] + w[t];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h) {
    for (int sh = 28; sh >= 0; sh -= 4) out.push_back(hex[(v >> sh) & 0xf]);
  }
  return out;
}

ojson input_json(const InputQuantizer& q) {
  ojson j;
  j["kind"] = q.kind;
  j["in_scale"] = q.in_scale;
  j["lo"] = q.lo;
  j["hi"] = q.hi;
  j["slope"] = q.slope;
  j["neg_lo"] = q.neg_lo;
  j["low"] = q.low;
  j["threshold"] = static_cast<double>(q.threshold);
  j["frac"] = q.frac;
  if (q.kind == "fixed_elem") {
    j["frac_elem"] = q.frac_elem;
    j["lo_elem"] = q.lo_elem;
    j["hi_elem"] = q.hi_elem;
    j["round_mode"] = q.round_mode;
    j["wrap"] = q.wrap;
  }
  return j;
}

// A requantizer as JSON; its tables go to `blobs` as tensors named prefix.breaks/.codes.
ojson requantizer_json(const Requantizer& r, const std::string& prefix,
                       std::vector<std::pair<std::string, Blob>>& blobs) {
  ojson q;
  q["kind"] = r.kind;
  q["shift"] = r.shift;
  q["lo"] = r.lo;
  q["hi"] = r.hi;
  q["has_slope"] = r.has_slope;
  q["slope_shift"] = r.slope_shift;
  q["neg_lo"] = r.neg_lo;
  q["low"] = r.low;
  q["threshold"] = r.threshold;
  if (r.kind == "table") {
    // the tables as tensors: breaks and codes concatenated, with each table's length
    q["table"] = r.table;
    std::vector<int64_t> lengths, breaks, codes;
    for (size_t t = 0; t < r.breaks.size(); ++t) {
      lengths.push_back(static_cast<int64_t>(r.breaks[t].size()));
      breaks.insert(breaks.end(), r.breaks[t].begin(), r.breaks[t].end());
      codes.insert(codes.end(), r.codes[t].begin(), r.codes[t].end());
    }
    q["table_lengths"] = lengths;
    const std::string b = prefix + ".breaks";
    const std::string c = prefix + ".codes";
    blobs.push_back({b, {narrowest(breaks), {static_cast<int64_t>(breaks.size())}, breaks}});
    blobs.push_back({c, {narrowest(codes), {static_cast<int64_t>(codes.size())}, codes}});
    q["breaks"] = b;
    q["codes"] = c;
  }
  if (r.kind == "fixed_elem") {
    q["lo_elem"] = r.lo_elem;
    q["hi_elem"] = r.hi_elem;
    q["round_mode"] = r.round_mode;
    q["wrap"] = r.wrap;
  }
  return q;
}

// A checked reader of the program JSON: every access names the key that is missing or mistyped.
struct Reader {
  const std::string& file;
  [[noreturn]] void fail(const std::string& what) const {
    throw InvalidArgument("heteroq::deploy::Engine::load: " + file + ": " + what);
  }
  const ojson& get(const ojson& j, const char* key, const std::string& where) const {
    if (!j.is_object() || !j.contains(key)) fail(where + ": missing `" + key + "`");
    return j.at(key);
  }
  int64_t integer(const ojson& j, const char* key, const std::string& where) const {
    const ojson& v = get(j, key, where);
    if (!v.is_number_integer()) fail(where + ": `" + key + "` must be an integer");
    return v.get<int64_t>();
  }
  double real(const ojson& j, const char* key, const std::string& where) const {
    const ojson& v = get(j, key, where);
    if (!v.is_number()) fail(where + ": `" + key + "` must be a number");
    return v.get<double>();
  }
  std::string text(const ojson& j, const char* key, const std::string& where) const {
    const ojson& v = get(j, key, where);
    if (!v.is_string()) fail(where + ": `" + key + "` must be a string");
    return v.get<std::string>();
  }
  bool boolean(const ojson& j, const char* key, const std::string& where) const {
    const ojson& v = get(j, key, where);
    if (!v.is_boolean()) fail(where + ": `" + key + "` must be true or false");
    return v.get<bool>();
  }
  std::vector<int64_t> ints(const ojson& j, const char* key, const std::string& where) const {
    const ojson& v = get(j, key, where);
    if (!v.is_array()) fail(where + ": `" + key + "` must be a list of integers");
    std::vector<int64_t> out;
    for (const auto& x : v) {
      if (!x.is_number_integer()) fail(where + ": `" + key + "` must be a list of integers");
      out.push_back(x.get<int64_t>());
    }
    return out;
  }
};

}  // namespace

void Engine::save(const std::string& path) const {
  const Program& p = program_;
  std::vector<std::pair<std::string, Blob>> blobs;
  ojson prog;
  prog["input_size"] = p.input_size;
  prog["flatten_input"] = p.flatten_input;
  prog["input_name"] = p.input_name;
  prog["output_shape"] = p.output_shape;
  prog["input"] = input_json(p.input);
  ojson stages = ojson::array();
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const Stage& s = p.stages[i];
    ojson j;
    j["kind"] = s.kind;
    j["name"] = s.name;
    j["frac"] = s.frac;
    if (s.kind == "gather") {
      j["in_features"] = s.in_features;
      j["out_features"] = s.out_features;
      const std::string x = "stages." + std::to_string(i) + ".index";
      blobs.push_back({x, {narrowest(s.index), {s.out_features}, s.index}});
      j["index"] = x;
    } else if (s.kind == "dense" || s.kind == "conv2d" || s.kind == "affine") {
      j["cost_bits"] = s.cost_bits;
      j["cost_frac"] = s.cost_frac;
      j["in_features"] = s.in_features;
      j["out_features"] = s.out_features;
      const std::string w = "stages." + std::to_string(i) + ".weight";
      const ConvGeometry& g = s.conv;
      const bool aff = s.kind == "affine";
      if (aff) j["channels"] = s.channels;
      const bool conv = s.kind == "conv2d";
      if (conv) {
        j["conv"] = {{"in_channels", g.in_channels}, {"in_h", g.in_h}, {"in_w", g.in_w},
                     {"out_channels", g.out_channels}, {"kernel_h", g.kernel_h}, {"kernel_w", g.kernel_w},
                     {"stride_h", g.stride_h}, {"stride_w", g.stride_w}, {"pad_h", g.pad_h},
                     {"pad_w", g.pad_w}, {"pad_h_end", g.pad_bottom()}, {"pad_w_end", g.pad_right()},
                     {"dilation_h", g.dilation_h}, {"dilation_w", g.dilation_w}, {"groups", g.groups}};
      }
      const std::vector<int64_t> wshape =
          aff ? std::vector<int64_t>{s.channels}
          : conv ? std::vector<int64_t>{g.out_channels, g.in_channels / std::max<int64_t>(g.groups, 1), g.kernel_h, g.kernel_w}
                 : std::vector<int64_t>{s.out_features, s.in_features};
      const int64_t nb = aff ? s.channels : conv ? g.out_channels : s.out_features;
      blobs.push_back({w, {narrowest(s.weight), wshape, s.weight}});
      j["weight"] = w;
      if (!s.bias.empty()) {
        const std::string b = "stages." + std::to_string(i) + ".bias";
        blobs.push_back({b, {narrowest(s.bias), {nb}, s.bias}});
        j["bias"] = b;
      } else {
        j["bias"] = nullptr;
      }
    } else if (s.kind == "recurrent") {
      const Recurrent& R = s.recurrent;
      j["in_features"] = s.in_features;
      j["out_features"] = s.out_features;
      ojson rj;
      rj["cell"] = R.cell;
      rj["steps"] = R.steps;
      rj["features"] = R.features;
      rj["hidden"] = R.hidden;
      rj["reset_after"] = R.reset_after;
      rj["return_sequences"] = R.return_sequences;
      ojson dirs = ojson::array();
      for (size_t d = 0; d < R.directions.size(); ++d) {
        const RecurrentDirection& r = R.directions[d];
        const std::string pre = "stages." + std::to_string(i) + ".d" + std::to_string(d);
        ojson dj;
        // the weights as flat tensors (null: absent)
        auto put = [&](const char* key, const std::vector<int64_t>& v) {
          if (v.empty()) {
            dj[key] = nullptr;
            return;
          }
          const std::string name = pre + "." + key;
          blobs.push_back({name, {narrowest(v), {static_cast<int64_t>(v.size())}, v}});
          dj[key] = name;
        };
        put("w_ih", r.w_ih);
        put("b_ih", r.b_ih);
        put("w_hh", r.w_hh);
        put("b_hh", r.b_hh);
        put("w_hn", r.w_hn);
        put("b_hn", r.b_hn);
        dj["x_frac"] = r.x_frac;
        dj["hh_frac"] = r.hh_frac;
        dj["a_frac"] = r.a_frac;
        dj["n_frac"] = r.n_frac;
        dj["hn_frac"] = r.hn_frac;
        dj["c_frac"] = r.c_frac;
        dj["h_frac"] = r.h_frac;
        const std::pair<const char*, const RecurrentActivation*> acts[] = {
            {"act", &r.act}, {"ract", &r.ract}, {"act_c", &r.act_c}, {"state_h", &r.state_h}, {"state_c", &r.state_c}};
        for (const auto& [key, a] : acts) {
          ojson aj;
          aj["kind"] = a->kind;
          aj["in_frac"] = a->in_frac;
          aj["out_frac"] = a->out_frac;
          if (a->kind == "requantize") aj["requantizer"] = requantizer_json(a->requantizer, pre + "." + key, blobs);
          dj[key] = aj;
        }
        dirs.push_back(dj);
      }
      rj["directions"] = dirs;
      j["recurrent"] = rj;
    } else {
      j["requantizer"] = requantizer_json(s.requantizer, "stages." + std::to_string(i), blobs);
    }
    stages.push_back(j);
  }
  prog["stages"] = stages;

  ojson header = ojson::object();
  size_t offset = 0;
  std::string data;
  for (const auto& [name, b] : blobs) {
    const int size = itemsize(b.dtype);
    ojson e;
    e["dtype"] = b.dtype;
    e["shape"] = b.shape;
    e["data_offsets"] = {offset, offset + b.values.size() * static_cast<size_t>(size)};
    header[name] = e;
    for (int64_t v : b.values) put_le(data, v, size);
    offset = data.size();
  }
  header["__metadata__"] = {{"format", kFormat},
                            {"format_version", std::to_string(kVersion)},
                            {"heteroq_version", HETEROQ_VERSION_STRING},
                            {"program", prog.dump()},
                            {"data_sha256", sha256_hex(data)}};
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::string bytes;
  put_le(bytes, static_cast<int64_t>(h.size()), 8);
  bytes += h;
  bytes += data;

  const std::string tmp = path + ".tmp" + std::to_string(static_cast<long>(::getpid()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw InvalidArgument("heteroq::deploy::Engine::save: cannot write " + tmp);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw InvalidArgument("heteroq::deploy::Engine::save: writing " + tmp + " failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InvalidArgument("heteroq::deploy::Engine::save: cannot rename " + tmp + " to " + path +
                          ": " + std::strerror(errno));
  }
}

Engine Engine::load(const std::string& path) {
  Reader rd{path};
  std::ifstream f(path, std::ios::binary);
  if (!f) rd.fail("cannot open the file");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 8) rd.fail("truncated: " + std::to_string(bytes.size()) + " bytes, less than the 8-byte header length");
  const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto n = static_cast<uint64_t>(get_le(raw, 8));
  if (n > bytes.size() - 8) {
    rd.fail("truncated or corrupted: the header length " + std::to_string(n) + " exceeds the " +
            std::to_string(bytes.size() - 8) + " bytes after it");
  }
  ojson header;
  try {
    header = ojson::parse(bytes.substr(8, n));
  } catch (const std::exception& e) {
    rd.fail(std::string("corrupted header (not JSON): ") + e.what());
  }
  if (!header.is_object()) rd.fail("corrupted header: not a JSON object");
  const size_t data_begin = 8 + n, data_size = bytes.size() - data_begin;
  const ojson& meta = rd.get(header, "__metadata__", "header");
  if (!meta.is_object()) rd.fail("`__metadata__` must be an object");
  const std::string format = rd.text(meta, "format", "__metadata__");
  if (format != kFormat) {
    rd.fail("not a heteroq engine file: format `" + format + "` (expected `" + kFormat + "`" +
            (format == "heteroq.quantized_weights"
                 ? "; this is a quantized-weights file: compile the model with heteroq.deploy.compile"
                 : "") + ")");
  }
  const std::string version = rd.text(meta, "format_version", "__metadata__");
  if (version != "1" && version != "2" && version != std::to_string(kVersion)) {
    rd.fail("unsupported format_version `" + version + "` (this heteroq reads 1 to " +
            std::to_string(kVersion) + ")");
  }
  const bool v1 = version == "1", before_v3 = v1 || version == "2";

  // Tensors: dtype, shape against byte count, offsets tiling the data section.
  std::map<std::string, Blob> blobs;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor `" + name + "`";
    Blob b;
    b.dtype = rd.text(e, "dtype", where);
    const int size = itemsize(b.dtype);
    if (size == 0) rd.fail(where + ": unsupported dtype `" + b.dtype + "` (integers only)");
    b.shape = rd.ints(e, "shape", where);
    uint64_t count = 1;
    for (int64_t d : b.shape) {
      if (d < 0 || d > (int64_t(1) << 40)) rd.fail(where + ": bad shape");
      count *= static_cast<uint64_t>(d);
      if (count > (uint64_t(1) << 40)) rd.fail(where + ": bad shape");
    }
    const std::vector<int64_t> off = rd.ints(e, "data_offsets", where);
    if (off.size() != 2 || off[0] < 0 || off[1] < off[0]) rd.fail(where + ": bad data_offsets");
    const auto begin = static_cast<uint64_t>(off[0]), end = static_cast<uint64_t>(off[1]);
    if (end - begin != count * static_cast<uint64_t>(size)) {
      rd.fail(where + ": data_offsets hold " + std::to_string(end - begin) + " bytes, the shape needs " +
              std::to_string(count * size));
    }
    if (end > data_size) {
      rd.fail("truncated: " + where + " ends at byte " + std::to_string(end) + " of a " +
              std::to_string(data_size) + "-byte data section");
    }
    ranges.push_back({begin, end});
    b.values.resize(count);
    for (uint64_t k = 0; k < count; ++k) b.values[k] = get_le(raw + data_begin + begin + k * size, size);
    blobs[name] = std::move(b);
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [b, e] : ranges) {
    if (b != at) rd.fail("corrupted: the tensors overlap or leave a gap at byte " + std::to_string(at));
    at = e;
  }
  if (at != data_size) {
    rd.fail("corrupted: " + std::to_string(data_size - at) + " bytes after the last tensor");
  }
  // The data section's checksum (files written before it existed have none).
  if (meta.contains("data_sha256")) {
    const std::string want = rd.text(meta, "data_sha256", "__metadata__");
    const std::string got = sha256_hex(bytes.substr(data_begin));
    if (got != want) {
      rd.fail("corrupted data section: its SHA-256 is " + got + ", __metadata__.data_sha256 says " +
              want + " (a changed or truncated byte)");
    }
  }

  ojson prog;
  try {
    prog = ojson::parse(rd.text(meta, "program", "__metadata__"));
  } catch (const InvalidArgument&) {
    throw;
  } catch (const std::exception& e) {
    rd.fail(std::string("corrupted `program` (not JSON): ") + e.what());
  }
  Program p;
  p.input_size = rd.integer(prog, "input_size", "program");
  p.flatten_input = rd.boolean(prog, "flatten_input", "program");
  p.input_name = rd.text(prog, "input_name", "program");
  p.output_shape = rd.ints(prog, "output_shape", "program");
  const ojson& in = rd.get(prog, "input", "program");
  p.input.kind = rd.text(in, "kind", "program.input");
  p.input.in_scale = rd.real(in, "in_scale", "program.input");
  p.input.lo = rd.integer(in, "lo", "program.input");
  p.input.hi = rd.integer(in, "hi", "program.input");
  p.input.slope = rd.real(in, "slope", "program.input");
  p.input.neg_lo = rd.integer(in, "neg_lo", "program.input");
  p.input.low = rd.integer(in, "low", "program.input");
  p.input.threshold = static_cast<float>(rd.real(in, "threshold", "program.input"));
  p.input.frac = rd.integer(in, "frac", "program.input");
  if (p.input.kind == "fixed_elem") {
    p.input.frac_elem = rd.ints(in, "frac_elem", "program.input");
    p.input.lo_elem = rd.ints(in, "lo_elem", "program.input");
    p.input.hi_elem = rd.ints(in, "hi_elem", "program.input");
    p.input.round_mode = rd.text(in, "round_mode", "program.input");
    p.input.wrap = rd.boolean(in, "wrap", "program.input");
  }
  const ojson& stages = rd.get(prog, "stages", "program");
  if (!stages.is_array()) rd.fail("program: `stages` must be a list");
  std::set<std::string> used;
  for (size_t i = 0; i < stages.size(); ++i) {
    const ojson& j = stages[i];
    const std::string where = "program.stages[" + std::to_string(i) + "]";
    Stage s;
    s.kind = rd.text(j, "kind", where);
    s.name = rd.text(j, "name", where);
    s.frac = rd.ints(j, "frac", where);
    auto tensor = [&](const std::string& name, std::vector<int64_t> shape) -> std::vector<int64_t> {
      auto it = blobs.find(name);
      if (it == blobs.end()) rd.fail(where + ": tensor `" + name + "` is missing");
      if (it->second.shape != shape) rd.fail(where + ": tensor `" + name + "` has the wrong shape");
      if (used.count(name)) rd.fail(where + ": tensor `" + name + "` is used twice");
      used.insert(name);
      return it->second.values;
    };
    // a requantizer's JSON (its tables from the tensors it names)
    auto read_requantizer = [&](const ojson& q, const std::string& w) {
      Requantizer r;
      r.kind = rd.text(q, "kind", w);
      r.shift = rd.ints(q, "shift", w);
      r.lo = rd.integer(q, "lo", w);
      r.hi = rd.integer(q, "hi", w);
      r.has_slope = rd.boolean(q, "has_slope", w);
      r.slope_shift = rd.ints(q, "slope_shift", w);
      r.neg_lo = rd.integer(q, "neg_lo", w);
      r.low = rd.integer(q, "low", w);
      r.threshold = rd.ints(q, "threshold", w);
      if (r.kind == "fixed_elem") {
        r.lo_elem = rd.ints(q, "lo_elem", w);
        r.hi_elem = rd.ints(q, "hi_elem", w);
        r.round_mode = rd.text(q, "round_mode", w);
        r.wrap = rd.boolean(q, "wrap", w);
      }
      if (r.kind == "table") {
        if (v1) rd.fail(w + ": a table requantizer needs format_version 2");
        r.table = rd.ints(q, "table", w);
        const std::vector<int64_t> lengths = rd.ints(q, "table_lengths", w);
        int64_t nb = 0;
        for (int64_t len : lengths) {
          if (len < 0 || len > (int64_t(1) << 40)) rd.fail(w + ": bad table_lengths");
          nb += len;
        }
        const std::vector<int64_t> breaks = tensor(rd.text(q, "breaks", w), {nb});
        const std::vector<int64_t> codes =
            tensor(rd.text(q, "codes", w), {nb + static_cast<int64_t>(lengths.size())});
        size_t bi = 0, ci = 0;
        for (int64_t len : lengths) {
          r.breaks.emplace_back(breaks.begin() + bi, breaks.begin() + bi + len);
          r.codes.emplace_back(codes.begin() + ci, codes.begin() + ci + len + 1);
          bi += len;
          ci += len + 1;
        }
      }
      return r;
    };
    if (s.kind == "gather" && !v1) {
      s.in_features = rd.integer(j, "in_features", where);
      s.out_features = rd.integer(j, "out_features", where);
      if (s.out_features <= 0) rd.fail(where + ": out_features must be positive");
      s.index = tensor(rd.text(j, "index", where), {s.out_features});
    } else if (s.kind == "dense" || s.kind == "conv2d" || s.kind == "affine") {
      if (!v1) {
        s.cost_bits = rd.integer(j, "cost_bits", where);
        s.cost_frac = rd.integer(j, "cost_frac", where);
      }
      s.in_features = rd.integer(j, "in_features", where);
      s.out_features = rd.integer(j, "out_features", where);
      const bool conv = s.kind == "conv2d", aff = s.kind == "affine";
      if (aff) s.channels = rd.integer(j, "channels", where);
      if (conv) {
        const ojson& c = rd.get(j, "conv", where);
        const std::string w = where + ".conv";
        ConvGeometry& g = s.conv;
        g.in_channels = rd.integer(c, "in_channels", w);
        g.in_h = rd.integer(c, "in_h", w);
        g.in_w = rd.integer(c, "in_w", w);
        g.out_channels = rd.integer(c, "out_channels", w);
        g.kernel_h = rd.integer(c, "kernel_h", w);
        g.kernel_w = rd.integer(c, "kernel_w", w);
        g.stride_h = rd.integer(c, "stride_h", w);
        g.stride_w = rd.integer(c, "stride_w", w);
        g.pad_h = rd.integer(c, "pad_h", w);
        g.pad_w = rd.integer(c, "pad_w", w);
        if (!v1) {
          g.pad_h_end = rd.integer(c, "pad_h_end", w);
          g.pad_w_end = rd.integer(c, "pad_w_end", w);
          if (g.pad_h_end < 0 || g.pad_w_end < 0) rd.fail(w + ": pad_h_end and pad_w_end must be >= 0");
        }
        g.dilation_h = rd.integer(c, "dilation_h", w);
        g.dilation_w = rd.integer(c, "dilation_w", w);
        g.groups = rd.integer(c, "groups", w);
        if (g.groups <= 0) rd.fail(w + ": groups must be positive");
      }
      const ConvGeometry& g = s.conv;
      s.weight = tensor(rd.text(j, "weight", where),
                        aff ? std::vector<int64_t>{s.channels}
                        : conv ? std::vector<int64_t>{g.out_channels, g.in_channels / g.groups, g.kernel_h, g.kernel_w}
                               : std::vector<int64_t>{s.out_features, s.in_features});
      const ojson& b = rd.get(j, "bias", where);
      if (!b.is_null()) {
        if (!b.is_string()) rd.fail(where + ": `bias` must be a tensor name or null");
        s.bias = tensor(b.get<std::string>(), {aff ? s.channels : conv ? g.out_channels : s.out_features});
      }
    } else if (s.kind == "recurrent") {
      if (before_v3) rd.fail(where + ": a recurrent stage needs format_version 3");
      s.in_features = rd.integer(j, "in_features", where);
      s.out_features = rd.integer(j, "out_features", where);
      const ojson& rj = rd.get(j, "recurrent", where);
      const std::string w = where + ".recurrent";
      Recurrent& R = s.recurrent;
      R.cell = rd.text(rj, "cell", w);
      R.steps = rd.integer(rj, "steps", w);
      R.features = rd.integer(rj, "features", w);
      R.hidden = rd.integer(rj, "hidden", w);
      R.reset_after = rd.boolean(rj, "reset_after", w);
      R.return_sequences = rd.boolean(rj, "return_sequences", w);
      const ojson& dirs = rd.get(rj, "directions", w);
      if (!dirs.is_array() || dirs.empty() || dirs.size() > 2) rd.fail(w + ": `directions` must be a list of 1 or 2");
      for (size_t d = 0; d < dirs.size(); ++d) {
        const ojson& dj = dirs[d];
        const std::string dw = w + ".directions[" + std::to_string(d) + "]";
        RecurrentDirection r;
        auto flat = [&](const char* key) -> std::vector<int64_t> {
          const ojson& v = rd.get(dj, key, dw);
          if (v.is_null()) return {};
          if (!v.is_string()) rd.fail(dw + ": `" + key + "` must be a tensor name or null");
          auto it = blobs.find(v.get<std::string>());
          if (it == blobs.end()) rd.fail(dw + ": tensor `" + v.get<std::string>() + "` is missing");
          return tensor(v.get<std::string>(), {static_cast<int64_t>(it->second.values.size())});
        };
        r.w_ih = flat("w_ih");
        r.b_ih = flat("b_ih");
        r.w_hh = flat("w_hh");
        r.b_hh = flat("b_hh");
        r.w_hn = flat("w_hn");
        r.b_hn = flat("b_hn");
        r.x_frac = rd.integer(dj, "x_frac", dw);
        r.hh_frac = rd.integer(dj, "hh_frac", dw);
        r.a_frac = rd.integer(dj, "a_frac", dw);
        r.n_frac = rd.integer(dj, "n_frac", dw);
        r.hn_frac = rd.integer(dj, "hn_frac", dw);
        r.c_frac = rd.integer(dj, "c_frac", dw);
        r.h_frac = rd.integer(dj, "h_frac", dw);
        const std::pair<const char*, RecurrentActivation*> acts[] = {
            {"act", &r.act}, {"ract", &r.ract}, {"act_c", &r.act_c}, {"state_h", &r.state_h}, {"state_c", &r.state_c}};
        for (const auto& [key, a] : acts) {
          const ojson& aj = rd.get(dj, key, dw);
          const std::string aw = dw + "." + key;
          a->kind = rd.text(aj, "kind", aw);
          a->in_frac = rd.integer(aj, "in_frac", aw);
          a->out_frac = rd.integer(aj, "out_frac", aw);
          if (a->kind == "requantize") a->requantizer = read_requantizer(rd.get(aj, "requantizer", aw), aw + ".requantizer");
        }
        R.directions.push_back(std::move(r));
      }
    } else if (s.kind == "requantize") {
      s.requantizer = read_requantizer(rd.get(j, "requantizer", where), where + ".requantizer");
    } else {
      rd.fail(where + ": unknown stage kind `" + s.kind + "`");
    }
    p.stages.push_back(std::move(s));
  }
  for (const auto& [name, b] : blobs) {
    if (!used.count(name)) rd.fail("tensor `" + name + "` is not used by the program");
  }
  try {
    return Engine(std::move(p));
  } catch (const InvalidArgument& e) {
    rd.fail(std::string("invalid program: ") + e.what());
  }
}

}  // namespace heteroq::deploy
