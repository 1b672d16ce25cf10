// JSON text of parsed values as the Python readers print them (orjson.dumps / repr(float)).
#include <string>
#include <charconv>
#include <cmath>

#include "columns.hpp"

namespace obslab {

void python_float(double d, std::string& out) {
  double a = std::fabs(d);
  if (!(a == 0 || (a >= 1e-4 && a < 1e16))) throw Refuse("float outside repr's fixed range");
  if (d == 0 && std::signbit(d)) throw Refuse("negative zero");  // (readers disagree on its sign)
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  if (res.ec != std::errc()) throw Refuse("float format");
  std::string_view s(buf, static_cast<size_t>(res.ptr - buf));
  out.append(s);
  if (s.find('.') == std::string_view::npos) out += ".0";
}

void orjson_float(double d, std::string& out) {
  if (!std::isfinite(d)) throw Refuse("non-finite float");  // (JSON input has none)
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);  // shortest
  if (res.ec != std::errc()) throw Refuse("float format");
  std::string_view s(buf, static_cast<size_t>(res.ptr - buf));
  size_t e = s.find('e');
  int exp10 = 0;
  std::from_chars(s.data() + e + (s[e + 1] == '+' ? 2 : 1), s.data() + s.size(), exp10);
  if (d < 0 || std::signbit(d)) out += '-';
  std::string_view m = s.substr(0, e);
  if (m[0] == '-') m.remove_prefix(1);
  char digits[32];
  size_t n = 0;
  for (char c : m)
    if (c != '.') digits[n++] = c;
  int point = exp10 + 1;  // digits before the decimal point
  if (point > -5 && point <= 16) {
    if (point <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-point), '0');
      out.append(digits, n);
    } else if (static_cast<size_t>(point) >= n) {
      out.append(digits, n);
      out.append(static_cast<size_t>(point) - n, '0');
      out += ".0";
    } else {
      out.append(digits, static_cast<size_t>(point));
      out += '.';
      out.append(digits + point, n - static_cast<size_t>(point));
    }
    return;
  }
  out += digits[0];
  if (n > 1) {
    out += '.';
    out.append(digits + 1, n - 1);
  }
  out += exp10 < 0 ? "e-" : "e+";
  out += std::to_string(exp10 < 0 ? -exp10 : exp10);
}

// json_escape, with runs of characters that need no escape appended whole (most text)
static void escape_runs(std::string& out, std::string_view s) {
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + start, i - start);
    json_escape(out, s.substr(i, 1));
    start = i + 1;
  }
  out.append(s.data() + start, s.size() - start);
}

// an object with a repeated key, as a dict prints it: each key once, in its first place, with
// its last value
static void object_with_repeats(simdjson::dom::object obj, std::string& out) {
  out += '{';
  bool first = true;
  size_t n = 0;
  for (auto field : obj) {
    size_t m = 0;
    bool seen = false;
    simdjson::dom::element value = field.value;
    for (auto other : obj) {
      if (other.key == field.key) {
        if (m < n) {
          seen = true;  // (printed at its first place)
          break;
        }
        value = other.value;  // itself, then any later repeat: the last one wins
      }
      ++m;
    }
    ++n;
    if (seen) continue;
    if (!first) out += ',';
    first = false;
    out += '"';
    escape_runs(out, field.key);
    out += "\":";
    json_text(value, out);
  }
  out += '}';
}

void json_text(simdjson::dom::element v, std::string& out) {
  using simdjson::dom::element_type;
  switch (v.type()) {
    case element_type::NULL_VALUE: out += "null"; break;
    case element_type::BOOL: out += v.get_bool().value_unsafe() ? "true" : "false"; break;
    case element_type::INT64: out += std::to_string(v.get_int64().value_unsafe()); break;
    case element_type::UINT64: out += std::to_string(v.get_uint64().value_unsafe()); break;
    case element_type::DOUBLE: orjson_float(v.get_double().value_unsafe(), out); break;
    case element_type::STRING:
      out += '"';
      escape_runs(out, v.get_string().value_unsafe());
      out += '"';
      break;
    case element_type::ARRAY: {
      out += '[';
      bool first = true;
      simdjson::dom::array arr = v.get_array().value_unsafe();  // (a named copy: see otlp.cpp as_array)
      for (simdjson::dom::element e : arr) {
        if (!first) out += ',';
        first = false;
        json_text(e, out);
      }
      out += ']';
      break;
    }
    case element_type::OBJECT: {
      simdjson::dom::object obj = v.get_object().value_unsafe();
      size_t start = out.size();
      out += '{';
      bool first = true;
      size_t n = 0;
      for (auto field : obj) {
        size_t m = 0;
        for (auto other : obj) {
          if (m++ >= n) break;
          if (other.key == field.key) {  // (rare: printed again, the slow way)
            out.resize(start);
            object_with_repeats(obj, out);
            return;
          }
        }
        ++n;
        if (!first) out += ',';
        first = false;
        out += '"';
        escape_runs(out, field.key);
        out += "\":";
        json_text(field.value, out);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace obslab
