// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The QKeras spec-string parser: `name`, or `name(arg, ..., key=value, ...)`.
#include "heteroq/quantizers/spec.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "heteroq/errors.h"

namespace heteroq {
namespace {

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  ParsedSpec parse() {
    ParsedSpec out;
    skip_ws();
    out.name = identifier("a quantizer name");
    skip_ws();
    if (at_end()) return out;
    if (peek() != '(') fail("expected '(' after the quantizer name");
    ++pos_;
    skip_ws();
    std::set<std::string> seen;
    if (peek() != ')') {
      while (true) {
        skip_ws();
        if (at_end()) fail("unbalanced parentheses: missing ')'");
        if (peek() == ')') break;  // trailing comma
        const size_t arg_start = pos_;
        std::string key;
        if (is_ident_start(peek())) {
          const size_t save = pos_;
          std::string word = identifier("an argument");
          skip_ws();
          if (!at_end() && peek() == '=') {
            ++pos_;
            key = word;
          } else {
            pos_ = save;
          }
        }
        skip_ws();
        SpecValue v = value();
        if (key.empty()) {
          if (!out.keywords.empty()) {
            fail_at(arg_start, "a positional argument follows a keyword argument");
          }
          out.positional.push_back(std::move(v));
        } else {
          if (!seen.insert(key).second) fail_at(arg_start, "keyword `" + key + "` is repeated");
          out.keywords.emplace_back(key, std::move(v));
        }
        skip_ws();
        if (at_end()) fail("unbalanced parentheses: missing ')'");
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() == ')') break;
        fail("expected ',' or ')'");
      }
    }
    ++pos_;  // ')'
    skip_ws();
    if (!at_end()) {
      fail(peek() == ')' ? "unbalanced parentheses: unexpected ')'" : "unexpected trailing text");
    }
    return out;
  }

 private:
  const std::string& s_;
  size_t pos_ = 0;

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }
  static bool is_ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
  static bool is_ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
  void skip_ws() {
    while (!at_end() && std::isspace(static_cast<unsigned char>(peek()))) ++pos_;
  }

  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    throw SpecError("quantizer spec \"" + s_ + "\": " + what + " at position " +
                    std::to_string(at));
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

  std::string identifier(const char* what) {
    if (at_end() || !is_ident_start(peek())) fail(std::string("expected ") + what);
    const size_t start = pos_;
    while (!at_end() && is_ident_char(peek())) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  SpecValue value() {
    if (at_end()) fail("expected a value");
    const char c = peek();
    if (c == '\'' || c == '"') {
      const size_t start = pos_++;
      while (!at_end() && peek() != c) ++pos_;
      if (at_end()) fail_at(start, "unterminated string");
      std::string text = s_.substr(start + 1, pos_ - start - 1);
      ++pos_;
      return text;
    }
    if (c == '[') {
      const size_t start = pos_++;
      std::vector<double> items;
      while (true) {
        skip_ws();
        if (at_end()) fail_at(start, "unbalanced brackets: missing ']'");
        if (peek() == ']') break;
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() == ')') fail_at(start, "unbalanced brackets: missing ']'");
        SpecValue item = number();
        items.push_back(std::holds_alternative<int64_t>(item)
                            ? static_cast<double>(std::get<int64_t>(item))
                            : std::get<double>(item));
      }
      ++pos_;
      return items;
    }
    if (is_ident_start(c)) {
      const size_t start = pos_;
      const std::string word = identifier("a value");
      if (word == "True" || word == "true") return true;
      if (word == "False" || word == "false") return false;
      if (word == "None" || word == "null") return std::monostate{};
      fail_at(start, "`" + word +
                         "` is not a value: expected a number, True/False, None, a quoted string "
                         "or a list");
    }
    return number();
  }

  SpecValue number() {
    const size_t start = pos_;
    while (!at_end() && (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '.' ||
                         peek() == '+' || peek() == '-')) {
      ++pos_;
    }
    const std::string tok = s_.substr(start, pos_ - start);
    if (tok.empty()) fail("expected a value");
    const char* b = tok.c_str();
    const char* e = b + tok.size();
    const bool is_int = tok.find_first_of(".eEiInN") == std::string::npos;
    if (is_int) {
      int64_t v = 0;
      const bool plus = *b == '+' && tok.size() > 1 && tok[1] != '-' && tok[1] != '+';
      auto [p, ec] = std::from_chars(plus ? b + 1 : b, e, v);
      if (ec == std::errc() && p == e) return v;
      if (ec == std::errc::result_out_of_range) fail_at(start, "integer `" + tok + "` is out of range");
    } else {
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(b, &end);
      // ERANGE on underflow still gives the nearest (subnormal or zero) value: accept it, so that
      // every finite double that format_spec_value writes reads back.
      if (end == e && std::isfinite(v) && (errno != ERANGE || std::fabs(v) < 1.0)) return v;
    }
    fail_at(start, "`" + tok + "` is not a valid number");
  }
};

}  // namespace

ParsedSpec parse_spec(const std::string& spec) { return Parser(spec).parse(); }

std::string format_spec_value(const SpecValue& value) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "None"; }
    std::string operator()(bool b) const { return b ? "True" : "False"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      char buf[64];
      auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), d);  // shortest round-trip form
      std::string s(buf, p);
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it a real number
      return s;
    }
    std::string operator()(const std::string& s) const { return "'" + s + "'"; }
    std::string operator()(const std::vector<double>& v) const {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + (*this)(v[i]);
      return s + "]";
    }
  };
  return std::visit(Visitor{}, value);
}

std::string describe_spec_value(const SpecValue& value) {
  static const char* kinds[] = {"None", "a bool", "an integer", "a number", "a string", "a list"};
  if (std::holds_alternative<std::monostate>(value)) return "None";
  return format_spec_value(value) + " (" + kinds[value.index()] + ")";
}

}  // namespace heteroq
