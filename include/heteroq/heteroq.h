// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// Umbrella header: everything public in heteroq.
#include "heteroq/errors.h"
#include "heteroq/version.h"
#include "heteroq/quantizers/spec.h"
#include "heteroq/quantizers/quantizer.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/conv.h"
#include "heteroq/nn/norm_pool.h"
#include "heteroq/nn/convert.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/rnn.h"
#include "heteroq/nn/serialize.h"
#include "heteroq/nn/config.h"
#include "heteroq/cost/qstats.h"
#include "heteroq/cost/qtools.h"
#include "heteroq/cost/hardware.h"
#include "heteroq/autoq/model.h"
#include "heteroq/deploy/compile.h"
