// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

// Search, then refine: AutoQ's Pareto trials refined with learned precision (heteroq/nn/hgq.h)
// under an EBOPs regularizer; the C++ counterpart of heteroq.autoq.refine (docs/autoq.md).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "heteroq/autoq/model.h"
#include "heteroq/export.h"
#include "heteroq/nn/regularizer.h"

namespace heteroq::autoq {

/// A model of the pipeline: an AutoQ trial ("autoq", epoch 0, beta 0) or a checkpoint of its
/// refinement ("refine"), with fixed quantizers only.
struct HETEROQ_API FrontPoint {
  std::string stage;
  int64_t trial = -1;
  int64_t epoch = 0;
  double metric = 0;
  /// heteroq::cost::bops(model, input_shape).ebops.
  double ebops = 0;
  double beta = 0;
  torch::nn::Sequential model{nullptr};
};

/// Trains a model of H layers and returns its checkpoints (trial left -1; refine() sets it).
using Refiner = std::function<std::vector<FrontPoint>(torch::nn::Sequential& hmodel)>;

/**
 * The learned-precision training (as heteroq.autoq.make_refiner): `epochs` passes over `train`
 * with `loss(output, y) + regularizer.penalty(model, step)` (step counts batches) and
 * `optimizer(params)` (default Adam, lr 1e-3); every `eval_every` epochs (and after the last) the
 * model is converted (heteroq::nn::hgq_convert) and recorded: its accuracy on `val` and its EBOPs
 * (heteroq::cost::bops with `input_shape`). `width_lr` > 0: the bit widths (the parameters of
 * the model's HQuantizers) get their own Adam at that learning rate, the other parameters
 * `optimizer`; 0: `optimizer` trains them all (Adam moves a width by about its learning rate per
 * step, so a short refinement needs a larger one for the widths, e.g. 0.02).
 * @throws heteroq::InvalidArgument for empty batches, a missing loss, epochs or eval_every < 1,
 *         an empty input_shape, or a negative width_lr.
 */
HETEROQ_API Refiner make_refiner(Batches train, Batches val, LossFn loss,
                                 nn::EBOPsRegularizer regularizer, int64_t epochs,
                                 std::vector<int64_t> input_shape,
                                 OptimizerFactory optimizer = nullptr, int64_t eval_every = 1,
                                 double width_lr = 0);

/// Builds the regularizer of one refinement from the H model it is about to train (e.g. a
/// controller whose EBOPs budget is a fraction of the model's starting EBOPs).
using RegularizerFactory = std::function<nn::EBOPsRegularizer(torch::nn::Sequential& hmodel)>;

/**
 * As above, with a regularizer made for each model by `regularizer(hmodel)` before its training.
 * (The overload above starts every model from a copy of its one regularizer as given, so a
 * controller's beta does not carry over from one trial's refinement to the next.)
 * @throws heteroq::InvalidArgument as above, and for an empty factory.
 */
HETEROQ_API Refiner make_refiner(Batches train, Batches val, LossFn loss,
                                 RegularizerFactory regularizer, int64_t epochs,
                                 std::vector<int64_t> input_shape,
                                 OptimizerFactory optimizer = nullptr, int64_t eval_every = 1,
                                 double width_lr = 0);

/**
 * For each chosen trial of a run `search` (`trials` empty: its Pareto front), its trained model
 * (ModelSearchOptions::keep_models must keep it) becomes H layers (hgq_from_quantized) that
 * `refiner` trains. Returns the AutoQ points (metric as trained, EBOPs from the cost model) and
 * every refinement checkpoint, in the order of the trials.
 * @throws heteroq::InvalidArgument for no trial, a trial number that is not a complete trial of
 *         the study, or one whose trained model is not kept (each message names the trial).
 */
HETEROQ_API std::vector<FrontPoint> refine(const ModelSearch& search, const Refiner& refiner,
                                           const std::vector<int64_t>& input_shape,
                                           std::vector<int64_t> trials = {},
                                           double default_input_bits = 8.0);

/// The indices of the points no other dominates in (metric up, EBOPs down), by EBOPs (pareto_front).
HETEROQ_API std::vector<int64_t> front_of(const std::vector<FrontPoint>& points);

}  // namespace heteroq::autoq
