// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq._C's deploy surface: the Engine (numpy arrays in and out; no torch type crosses
// pybind11) and the compile step from plain layer descriptions gathered by heteroq/deploy.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <ATen/ATen.h>

#include "heteroq/deploy/compile.h"
#include "heteroq/deploy/engine.h"

namespace py = pybind11;
namespace hd = heteroq::deploy;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

at::Tensor to_tensor(const py::handle& h, const std::string& where) {
  if (h.is_none()) return {};
  FloatArray a = FloatArray::ensure(h);
  if (!a) throw heteroq::InvalidArgument(where + ": expected a float array");
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return at::from_blob(const_cast<float*>(a.data()), shape, at::kFloat).clone();
}

heteroq::QuantizerPtr to_quantizer(const py::dict& d, const char* key) {
  if (!d.contains(key) || d[key].is_none()) return nullptr;
  return d[key].cast<heteroq::QuantizerPtr>();
}

// (batch, input_size) float32 rows: the number of samples.
int64_t check_input(const hd::Engine& e, const FloatArray& x) {
  const int64_t n = e.input_size();
  if (x.ndim() != 2 || x.shape(1) != n) {
    throw heteroq::InvalidArgument("heteroq.deploy.Engine: expected input rows of " +
                                   std::to_string(n) + " values");
  }
  return x.shape(0);
}

py::dict info_dict(const hd::StageInfo& s) {
  py::dict d;
  d["kind"] = s.kind;
  d["name"] = s.name;
  d["max_abs"] = s.max_abs;
  d["bits"] = s.bits;
  d["storage"] = s.storage;
  d["float32_exact"] = s.float32_exact;
  d["cost_bits"] = s.cost_bits;
  d["cost_frac"] = s.cost_frac;
  d["bits_at_cost_frac"] = s.bits_at_cost_frac;
  d["kernel"] = s.kernel;
  d["nonzero_weights"] = s.nonzero_weights;
  return d;
}

}  // namespace

void bind_deploy(py::module_& m) {
  py::class_<hd::Engine>(m, "DeployEngine")
      .def_property_readonly("input_size", &hd::Engine::input_size)
      .def_property_readonly("output_size", &hd::Engine::output_size)
      .def_property_readonly("output_frac", &hd::Engine::output_frac)
      .def_property_readonly("float32_exact", &hd::Engine::float32_exact)
      .def_property_readonly("flatten_input", [](const hd::Engine& e) { return e.program().flatten_input; })
      .def_property_readonly("output_shape", [](const hd::Engine& e) {
        return e.program().output_shape.empty() ? std::vector<int64_t>{e.output_size()}
                                                : e.program().output_shape;
      })
      .def_property_readonly("input_name", [](const hd::Engine& e) { return e.program().input_name; })
      .def("stage_info",
           [](const hd::Engine& e) {
             py::list out;
             for (const auto& s : e.stage_info()) out.append(info_dict(s));
             return out;
           })
      .def(
          "run_codes",
          [](const hd::Engine& e, const FloatArray& x) {
            const int64_t batch = check_input(e, x);
            py::array_t<int64_t> out({batch, e.output_size()});
            {
              py::gil_scoped_release release;
              e.run_codes(x.data(), batch, out.mutable_data());
            }
            return out;
          },
          py::arg("x"))
      .def(
          "run",
          [](const hd::Engine& e, const FloatArray& x) {
            const int64_t batch = check_input(e, x);
            py::array_t<float> out({batch, e.output_size()});
            {
              py::gil_scoped_release release;
              e.run(x.data(), batch, out.mutable_data());
            }
            return out;
          },
          py::arg("x"))
      .def(
          "with_options",
          [](const hd::Engine& e, double sparse_min_zero_fraction, int64_t gemm_min_batch) {
            hd::EngineOptions o;
            o.sparse_min_zero_fraction = sparse_min_zero_fraction;
            o.gemm_min_batch = gemm_min_batch;
            return hd::Engine(e.program(), o);
          },
          py::arg("sparse_min_zero_fraction"), py::arg("gemm_min_batch"))
      .def_property_readonly("sparse_min_zero_fraction",
                             [](const hd::Engine& e) { return e.options().sparse_min_zero_fraction; })
      .def_property_readonly("gemm_min_batch", [](const hd::Engine& e) { return e.options().gemm_min_batch; })
      .def("save", &hd::Engine::save, py::arg("path"))
      .def_static("load", &hd::Engine::load, py::arg("path"))
      .def("generate_header", &hd::Engine::generate_header, py::arg("name"));

  m.def(
      "deploy_compile",
      [](const py::list& layers, heteroq::QuantizerPtr input_quantizer,
         std::vector<int64_t> input_shape) {
        std::vector<hd::LayerDesc> descs;
        for (const auto& item : layers) {
          const py::dict d = item.cast<py::dict>();
          hd::LayerDesc l;
          l.name = d["name"].cast<std::string>();
          l.class_name = d["class_name"].cast<std::string>();
          const std::string who = "layer `" + l.name + "` (" + l.class_name + ")";
          if (d.contains("weight")) l.weight = to_tensor(d["weight"], who + " weight");
          if (d.contains("bias")) l.bias = to_tensor(d["bias"], who + " bias");
          l.kernel_quantizer = to_quantizer(d, "kernel_quantizer");
          l.bias_quantizer = to_quantizer(d, "bias_quantizer");
          l.activation = to_quantizer(d, "activation");
          l.mean_quantizer = to_quantizer(d, "mean_quantizer");
          if (d.contains("mean")) l.mean = to_tensor(d["mean"], who + " mean");
          if (d.contains("training")) l.training = d["training"].cast<bool>();
          if (d.contains("stride")) l.stride = d["stride"].cast<std::vector<int64_t>>();
          if (d.contains("padding")) l.padding = d["padding"].cast<std::vector<int64_t>>();
          if (d.contains("padding_end")) l.padding_end = d["padding_end"].cast<std::vector<int64_t>>();
          if (d.contains("padding_mode")) l.padding_mode = d["padding_mode"].cast<std::string>();
          if (d.contains("output_padding")) l.output_padding = d["output_padding"].cast<std::vector<int64_t>>();
          if (d.contains("transposed")) l.transposed = d["transposed"].cast<bool>();
          if (d.contains("count_include_pad")) l.count_include_pad = d["count_include_pad"].cast<bool>();
          if (d.contains("dilation")) l.dilation = d["dilation"].cast<std::vector<int64_t>>();
          if (d.contains("groups")) l.groups = d["groups"].cast<int64_t>();
          if (d.contains("cost_bits")) l.cost_bits = d["cost_bits"].cast<int64_t>();
          if (d.contains("cost_frac")) l.cost_frac = d["cost_frac"].cast<int64_t>();
          if (d.contains("kernel_size")) l.kernel_size = d["kernel_size"].cast<std::vector<int64_t>>();
          if (d.contains("ceil_mode")) l.ceil_mode = d["ceil_mode"].cast<bool>();
          if (d.contains("keepdim")) l.keepdim = d["keepdim"].cast<bool>();
          // recurrent layers
          auto tensors = [&](const char* key, std::vector<at::Tensor>& out) {
            if (!d.contains(key)) return;
            for (const auto& t : d[key].cast<py::list>()) {
              out.push_back(t.is_none() ? at::Tensor() : to_tensor(t, who + " " + key));
            }
          };
          tensors("weights_ih", l.weights_ih);
          tensors("weights_hh", l.weights_hh);
          tensors("biases_ih", l.biases_ih);
          tensors("biases_hh", l.biases_hh);
          if (d.contains("hidden_size")) l.hidden_size = d["hidden_size"].cast<int64_t>();
          if (d.contains("num_layers")) l.num_layers = d["num_layers"].cast<int64_t>();
          if (d.contains("bidirectional")) l.bidirectional = d["bidirectional"].cast<bool>();
          if (d.contains("batch_first")) l.batch_first = d["batch_first"].cast<bool>();
          if (d.contains("reset_after")) l.reset_after = d["reset_after"].cast<bool>();
          l.recurrent_quantizer = to_quantizer(d, "recurrent_quantizer");
          l.state_quantizer = to_quantizer(d, "state_quantizer");
          l.recurrent_activation = to_quantizer(d, "recurrent_activation");
          if (d.contains("activation_name")) l.activation_name = d["activation_name"].cast<std::string>();
          if (d.contains("recurrent_activation_name")) {
            l.recurrent_activation_name = d["recurrent_activation_name"].cast<std::string>();
          }
          if (d.contains("return_sequences")) l.return_sequences = d["return_sequences"].cast<bool>();
          descs.push_back(std::move(l));
        }
        hd::CompileOptions options;
        options.input_quantizer = std::move(input_quantizer);
        options.input_shape = std::move(input_shape);
        return hd::Engine(hd::compile_program(descs, options));
      },
      py::arg("layers"), py::arg("input_quantizer") = nullptr,
      py::arg("input_shape") = std::vector<int64_t>{},
      "Compiles layer descriptions (dicts gathered by heteroq.deploy) into a DeployEngine.");
}
