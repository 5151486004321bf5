// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/quantizers/quantizer.h"
#include "heteroq/quantizers/spec.h"

namespace {

using heteroq::SpecValue;

template <typename E>
std::string message_of(const std::string& spec) {
  try {
    heteroq::get_quantizer(spec);
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception for " << spec;
  return {};
}

TEST(Spec, ParsesPositionalAndKeywordArguments) {
  const auto p = heteroq::parse_spec("quantized_bits(6,0,alpha=1)");
  EXPECT_EQ(p.name, "quantized_bits");
  ASSERT_EQ(p.positional.size(), 2u);
  EXPECT_EQ(p.positional[0], SpecValue(int64_t{6}));
  EXPECT_EQ(p.positional[1], SpecValue(int64_t{0}));
  ASSERT_EQ(p.keywords.size(), 1u);
  EXPECT_EQ(p.keywords[0].first, "alpha");
  EXPECT_EQ(p.keywords[0].second, SpecValue(int64_t{1}));
}

TEST(Spec, ParsesEveryLiteralKind) {
  const auto p = heteroq::parse_spec(
      "  q ( -3 , +2, 0.5, 1e-3, True, False, None, 'auto_po2', \"x y\", [1 2.5], [3, -4], ) ");
  EXPECT_EQ(p.name, "q");
  const std::vector<SpecValue> expected = {
      int64_t{-3}, int64_t{2}, 0.5, 1e-3, true, false, std::monostate{}, std::string("auto_po2"),
      std::string("x y"), std::vector<double>{1, 2.5}, std::vector<double>{3, -4}};
  EXPECT_EQ(p.positional, expected);
}

TEST(Spec, BareNameHasNoArguments) {
  const auto p = heteroq::parse_spec("quantized_relu");
  EXPECT_EQ(p.name, "quantized_relu");
  EXPECT_TRUE(p.positional.empty());
  EXPECT_TRUE(p.keywords.empty());
  EXPECT_EQ(heteroq::get_quantizer("quantized_relu")->to_string(), "quantized_relu(8,0)");
  EXPECT_EQ(heteroq::get_quantizer("quantized_relu()")->to_string(), "quantized_relu(8,0)");
}

TEST(Spec, MalformedSpecsThrowSpecErrorWithPosition) {
  struct Case {
    const char* spec;
    const char* needle;
  };
  const Case cases[] = {
      {"quantized_bits(4,0", "missing ')'"},
      {"quantized_bits(4,0))", "unexpected ')'"},
      {"quantized_bits 4", "expected '('"},
      {"", "expected a quantizer name"},
      {"(4)", "expected a quantizer name"},
      {"quantized_bits(4,,0)", "expected a value"},
      {"quantized_bits(bits=4, 0)", "positional argument follows a keyword"},
      {"quantized_bits(bits=4, bits=5)", "`bits` is repeated"},
      {"quantized_bits(4x)", "`4x` is not a valid number"},
      {"quantized_bits(auto)", "`auto` is not a value"},
      {"quantized_bits(alpha='auto)", "unterminated string"},
      {"quantized_bits(alpha=[1 2)", "missing ']'"},
      {"quantized_bits(99999999999999999999)", "out of range"},
      {"quantized_bits(4) extra", "unexpected trailing text"},
  };
  for (const auto& c : cases) {
    const std::string msg = message_of<heteroq::SpecError>(c.spec);
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.spec << " -> " << msg;
    EXPECT_NE(msg.find("position"), std::string::npos) << msg;
  }
}

TEST(Spec, ErrorTypesDeriveFromInvalidArgument) {
  EXPECT_THROW(heteroq::get_quantizer("quantized_bits(4"), heteroq::SpecError);
  EXPECT_THROW(heteroq::get_quantizer("quantized_bits(4"), heteroq::InvalidArgument);
  EXPECT_THROW(heteroq::get_quantizer("quantized_bits(4"), std::invalid_argument);
  EXPECT_THROW(heteroq::get_quantizer("quantized_bits(0)"), std::invalid_argument);
}

TEST(Spec, UnknownNamesAndArgumentsAreNamed) {
  std::string msg = message_of<heteroq::SpecError>("quantized_bitz(4)");
  EXPECT_NE(msg.find("unknown quantizer `quantized_bitz`"), std::string::npos) << msg;
  EXPECT_NE(msg.find("quantized_bits"), std::string::npos) << msg;
  msg = message_of<heteroq::SpecError>("quantized_bits(4, bitz=2)");
  EXPECT_NE(msg.find("no argument `bitz`"), std::string::npos) << msg;
  msg = message_of<heteroq::SpecError>("quantized_relu(1,2,3,4,5,6,7,8,9,10,11,12,13)");
  EXPECT_NE(msg.find("at most 12 positional"), std::string::npos) << msg;
  msg = message_of<heteroq::SpecError>("quantized_bits(4, bits=4)");
  EXPECT_NE(msg.find("both by position and by keyword"), std::string::npos) << msg;
}

TEST(Spec, BadValuesNameTheArgumentAndValue) {
  struct Case {
    const char* spec;
    const char* needle;
  };
  const Case cases[] = {
      {"quantized_bits(0)", "`bits` must be an integer in [1, 32], got 0"},
      {"quantized_bits(33)", "`bits` must be an integer in [1, 32], got 33"},
      {"quantized_bits(-2)", "`bits` must be an integer in [1, 32], got -2"},
      {"quantized_bits(4.5)", "`bits` must be an integer, got 4.5"},
      {"quantized_bits('a')", "`bits` must be an integer, got 'a' (a string)"},
      {"quantized_bits(True)", "`bits` must be an integer, got True (a bool)"},
      {"quantized_bits(4, 65)", "`integer` must be an integer in [-64, 64], got 65"},
      {"quantized_bits(4, 0, 2)", "`symmetric` must be a bool"},
      {"quantized_bits(4, alpha=0)", "`alpha` must be None or a finite number > 0, got 0"},
      {"quantized_bits(4, alpha=-1.5)", "got -1.5"},
      {"quantized_bits(4, alpha='auto_p2')", "`alpha` must be None, a number, 'auto' or 'auto_po2'"},
      {"quantized_bits(4, alpha='auto', post_training_scale=1)",
       "`post_training_scale`=1 is not supported yet"},
      {"quantized_bits(4, elements_per_scale=2)", "applies to alpha 'auto_po2' only"},
      {"quantized_bits(4, alpha='auto_po2', min_po2_exponent=3, max_po2_exponent=1)",
       "must not exceed `max_po2_exponent`"},
      {"quantized_bits(4, alpha=[1, -2])", "`alpha`[1] must be a finite number > 0"},
      {"quantized_relu(4, relu_upper_bound=-1)", "`relu_upper_bound` must be None or a finite"},
      {"ternary(alpha=1, use_stochastic_rounding=1)", "needs alpha 'auto' or 'auto_po2'"},
      {"quantized_relu(4, negative_slope=0.3)", "power of two"},
      {"quantized_relu(4, negative_slope=-0.5)", "`negative_slope` must be a finite number >= 0"},
      {"quantized_relu(1, 0, 0, 0.5)", "`bits` must be >= 2"},
      {"quantized_relu(4, 0, 'x')", "`use_sigmoid` must be a bool"},
  };
  for (const auto& c : cases) {
    const std::string msg = message_of<heteroq::InvalidArgument>(c.spec);
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.spec << " -> " << msg;
  }
}

TEST(Spec, TensorFlowOnlyArgumentsAreAccepted) {
  auto q = heteroq::get_quantizer("quantized_bits(4, 0, var_name='w', use_variables=True)");
  EXPECT_EQ(q->to_string(), "quantized_bits(4,0,0)");
  // Integral reals are accepted for integers (configs written by JSON tools).
  EXPECT_EQ(heteroq::get_quantizer("quantized_bits(6.0, 2.0)")->bits(), 6);
}

TEST(Spec, ToStringRoundTrips) {
  const char* specs[] = {
      "quantized_bits(6,0,alpha=1)", "quantized_bits(4,2,1)",
      "quantized_bits(8,0,0,keep_negative=False)", "quantized_bits(1,0,0,alpha=0.25)",
      "quantized_bits(5, 1, alpha=0.1)", "quantized_bits(32,-64)",
      "quantized_relu(4,2)", "quantized_relu(6,0,1)", "quantized_relu(4,0,0,0.25)",
      "quantized_relu(8, 3, use_sigmoid=True, negative_slope=0.5)", "quantized_relu",
      "quantized_bits(4,0,alpha='auto_po2')", "quantized_bits(6,1,0,alpha='auto',scale_axis=[0 1])",
  };
  for (const char* s : specs) {
    const auto q = heteroq::get_quantizer(s);
    const auto q2 = heteroq::get_quantizer(q->to_string());
    EXPECT_EQ(q2->to_string(), q->to_string()) << s;
    EXPECT_EQ(q2->config(), q->config()) << s;
    EXPECT_EQ(q2->name(), q->name());
  }
  EXPECT_EQ(heteroq::get_quantizer("quantized_bits(6,0,alpha=1)")->to_string(),
            "quantized_bits(6,0,0,alpha=1.0)");
  EXPECT_EQ(heteroq::get_quantizer("quantized_bits(5,1,alpha=0.1)")->to_string(),
            "quantized_bits(5,1,0,alpha=0.1)");
  EXPECT_EQ(heteroq::get_quantizer("quantized_relu(4,0,0,0.25)")->to_string(),
            "quantized_relu(4,0,0,0.25)");
}

TEST(Spec, FormatValueReadsBack) {
  const std::vector<SpecValue> values = {std::monostate{}, true, false, int64_t{-7}, 0.1, 1.0,
                                         1e-30, std::string("auto"),
                                         std::vector<double>{0.5, -2}};
  for (const auto& v : values) {
    const auto p = heteroq::parse_spec("f(" + heteroq::format_spec_value(v) + ")");
    ASSERT_EQ(p.positional.size(), 1u);
    EXPECT_EQ(p.positional[0], v) << heteroq::format_spec_value(v);
  }
}

}  // namespace

namespace {

TEST(Spec, RangeIsPo2AndJson) {
  EXPECT_EQ(heteroq::get_quantizer("quantized_bits(3,0)")->range(),
            (std::vector<double>{0, 0.25, 0.5, 0.75, -1, -0.75, -0.5, -0.25}));
  EXPECT_EQ(heteroq::get_quantizer("quantized_po2(3)")->range(),
            (std::vector<double>{0.25, 0.5, 1, 2, -0.25, -0.5, -1, -2}));
  EXPECT_EQ(heteroq::get_quantizer("ternary(alpha=0.5)")->range(),
            (std::vector<double>{-0.5, 0, 0.5}));
  EXPECT_THROW(heteroq::get_quantizer("quantized_bits(4,alpha='auto')")->range(),
               heteroq::InvalidArgument);
  EXPECT_TRUE(heteroq::get_quantizer("quantized_relu_po2(4)")->is_po2());
  EXPECT_FALSE(heteroq::get_quantizer("quantized_relu(4)")->is_po2());
  for (const char* spec : {"quantized_bits(4,0,alpha='auto_po2',scale_axis=1,qnoise_factor=0.5)",
                           "quantized_relu(4,2,0,0.25)", "quantized_po2(5,0.5,log2_rounding='floor')",
                           "binary(use_01=1,alpha=2)", "quantized_sigmoid(4,1)"}) {
    const auto q = heteroq::get_quantizer(spec);
    const auto q2 = heteroq::quantizer_from_json(q->to_json());
    EXPECT_EQ(q2->to_string(), q->to_string()) << q->to_json();
  }
  EXPECT_EQ(heteroq::get_quantizer("quantized_bits(4,0,alpha=1)")->to_json(),
            "{\"class_name\":\"quantized_bits\",\"config\":{\"alpha\":1.0,\"bits\":4,"
            "\"elements_per_scale\":null,\"integer\":0,\"keep_negative\":true,"
            "\"max_po2_exponent\":null,\"min_po2_exponent\":null,\"qnoise_factor\":1.0,"
            "\"scale_axis\":null,\"symmetric\":false,\"use_ste\":true,"
            "\"use_stochastic_rounding\":false}}");
  EXPECT_THROW(heteroq::quantizer_from_json("{"), heteroq::SpecError);
  EXPECT_THROW(heteroq::quantizer_from_json("[1]"), heteroq::SpecError);
  EXPECT_THROW(heteroq::quantizer_from_json("{\"class_name\": \"quantized_bits\", \"config\": 3}"),
               heteroq::SpecError);
}

}  // namespace
