// OTLP JSON lines -> FLAT_SPAN column buffers with simdjson's DOM parser (every value of a
// line is validated, as orjson does, even the ones we do not read).
//
// Mirrors obslab/ocsf/otlp.py (_add_span and friends) for the shape exporters write: camelCase
// keys, hex ids, int64 as decimal text or JSON numbers, enums as numbers or names, attribute
// values of every kind (floats printed as repr() and orjson.dumps print them). A line it cannot
// reproduce exactly (snake_case keys, base64 ids, rare number texts, a line that is not one
// JSON object, a span the Python path would reject) is refused with a reason and left out;
// the Python reader reads that line: refusing is always safe, guessing never is.
#include <simdjson.h>

#include <array>
#include <charconv>
#include <cmath>
#include <tuple>
#include <cstring>
#include <string>
#include <unordered_map>

#include "columns.hpp"
#include "tables.hpp"

namespace obslab {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::key_value_pair;

// An element's object / array by value: range-for over ``e.get_object().value()`` would keep a
// reference into a temporary that dies before the loop runs
simdjson::dom::object as_object(element e) { return e.get_object().value(); }
simdjson::dom::array as_array(element e) { return e.get_array().value(); }

constexpr int64_t MAX_NANOS = INT64_MAX;  // otlp.py: 0 < t < 2**63

// --- scalars --------------------------------------------------------------------------------
// Python int(text) for an optional '-' and up to 19 ASCII digits within int64 (what exporters
// write); refuses the rest ("+", spaces, "_", other digits, huge values)
int64_t parse_int_text(std::string_view s) {
  bool neg = !s.empty() && s[0] == '-';
  std::string_view digits = neg ? s.substr(1) : s;
  if (digits.empty() || digits.size() > 19) throw Refuse("integer text the Python path must read");
  uint64_t v = 0;  // (19 digits always fit uint64)
  for (char c : digits) {
    if (c < '0' || c > '9') throw Refuse("integer text the Python path must read");
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  constexpr uint64_t LIMIT = static_cast<uint64_t>(INT64_MAX);
  if (v > LIMIT + (neg ? 1 : 0)) throw Refuse("integer text past int64");
  if (!neg) return static_cast<int64_t>(v);
  return v == LIMIT + 1 ? INT64_MIN : -static_cast<int64_t>(v);
}

int64_t json_int(element v) {
  switch (v.type()) {
    case element_type::STRING:
      return parse_int_text(v.get_string().value());
    case element_type::INT64:
      return v.get_int64().value();
    default:  // floats, integers past int64, other types
      throw Refuse("integer the Python path must read");
  }
}

// Epoch nanoseconds (otlp._nanos): decimal text (up to 19 digits), a JSON integer, or a JSON
// float truncated as int(float) does; -1 when absent/empty
int64_t nanos(element v) {
  switch (v.type()) {
    case element_type::NULL_VALUE:
      return -1;
    case element_type::STRING: {
      std::string_view s = v.get_string().value();
      if (s.empty()) return -1;
      if (s.size() > 19) throw Refuse("time text");
      unsigned __int128 x = 0;
      for (char c : s) {
        if (c < '0' || c > '9') throw Refuse("time text");
        x = x * 10 + static_cast<unsigned>(c - '0');
      }
      if (x > static_cast<unsigned __int128>(MAX_NANOS)) throw Refuse("time out of range");
      return static_cast<int64_t>(x);
    }
    case element_type::INT64:
      return v.get_int64().value();
    case element_type::DOUBLE: {
      double d = v.get_double().value();
      // (2**63 is exact as a double: below it the cast truncates toward zero, as int() does)
      if (!(d >= 0 && d < 9223372036854775808.0)) throw Refuse("time float out of range");
      return static_cast<int64_t>(d);
    }
    default:
      throw Refuse("time of another JSON type");
  }
}

// otlp._enum(): a JSON integer, or text: digits (with one '-') as int(), else the name
// upper-cased in ``names`` (0 when unknown)
template <size_t N>
int64_t enum_value(element v, const std::array<std::pair<std::string_view, int>, N>& names) {
  switch (v.type()) {
    case element_type::NULL_VALUE:
      return 0;
    case element_type::INT64:
      return v.get_int64().value();
    case element_type::STRING: {
      std::string_view s = v.get_string().value();
      std::string_view digits = !s.empty() && s[0] == '-' ? s.substr(1) : s;
      if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos)
        return parse_int_text(s);
      char up[32];
      if (s.size() > sizeof up) return 0;  // (longer than every name)
      for (size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        // non-ASCII: str.upper() and str.isdigit() know more than ASCII; "-" leads: "--5" fails int()
        if (c >= 0x80 || c == '-') throw Refuse("enum text the Python path must read");
        up[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : static_cast<char>(c);
      }
      std::string_view key(up, s.size());
      for (const auto& [name, value] : names)
        if (name == key) return value;
      return 0;
    }
    default:  // bools count as ints in Python, floats return themselves: rare, Python reads them
      throw Refuse("enum of another JSON type");
  }
}

// otlp.KIND_NAMES and otlp.STATUS_NAMES
constexpr std::array<std::pair<std::string_view, int>, 12> KIND_NAMES{{
    {"SPAN_KIND_UNSPECIFIED", 0}, {"SPAN_KIND_INTERNAL", 1}, {"SPAN_KIND_SERVER", 2}, {"SPAN_KIND_CLIENT", 3},
    {"SPAN_KIND_PRODUCER", 4}, {"SPAN_KIND_CONSUMER", 5}, {"UNSPECIFIED", 0}, {"INTERNAL", 1}, {"SERVER", 2},
    {"CLIENT", 3}, {"PRODUCER", 4}, {"CONSUMER", 5}}};
constexpr std::array<std::pair<std::string_view, int>, 6> STATUS_NAMES{{
    {"STATUS_CODE_UNSET", 0}, {"STATUS_CODE_OK", 1}, {"STATUS_CODE_ERROR", 2}, {"UNSET", 0}, {"OK", 1},
    {"ERROR", 2}}};

// repr(float): fixed notation in 1e-4 <= |d| < 1e16 (python_float), else the shortest
// round-trip digits as "1.5e-05" / "1e+16" (a sign and at least two exponent digits)
void repr_float(double d, std::string& out) {
  double a = std::fabs(d);
  if (a == 0) {
    out += std::signbit(d) ? "-0.0" : "0.0";
    return;
  }
  if ((a >= 1e-4 && a < 1e16) || !std::isfinite(d)) {
    python_float(d, out);  // (it refuses non-finite values)
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);  // shortest
  if (res.ec != std::errc()) throw Refuse("float format");
  std::string_view s(buf, static_cast<size_t>(res.ptr - buf));
  size_t e = s.find('e');
  out.append(s.substr(0, e));
  out += 'e';
  std::string_view exp = s.substr(e + 1);  // "+16", "-05", "-7"
  char sign = exp[0] == '-' ? '-' : '+';
  if (exp[0] == '-' || exp[0] == '+') exp.remove_prefix(1);
  while (exp.size() > 1 && exp[0] == '0') exp.remove_prefix(1);
  out += sign;
  if (exp.size() < 2) out += '0';
  out.append(exp);
}

// a doubleValue as Python's float() of it (simdjson reads the JSON integer -0 as the integer
// 0, as orjson does, and -0.0 as -0.0: test_ocsf_native_otlp checks both)
double json_double(element v) { return v.get_double().value(); }

// --- field names ----------------------------------------------------------------------------
// proto JSON (snake_case) names otlp.py reads as well as the camelCase ones (its _g() and
// any_value()); other snake_case names are as unknown to it as to us
constexpr std::pair<std::string_view, std::string_view> SNAKE_NAMES[] = {
    {"resource_spans", "resourceSpans"}, {"scope_spans", "scopeSpans"}, {"schema_url", "schemaUrl"},
    {"trace_id", "traceId"}, {"span_id", "spanId"}, {"parent_span_id", "parentSpanId"},
    {"start_time_unix_nano", "startTimeUnixNano"}, {"end_time_unix_nano", "endTimeUnixNano"},
    {"trace_state", "traceState"}, {"time_unix_nano", "timeUnixNano"}, {"string_value", "stringValue"},
    {"int_value", "intValue"}, {"double_value", "doubleValue"}, {"bool_value", "boolValue"},
    {"array_value", "arrayValue"}, {"kvlist_value", "kvlistValue"}, {"bytes_value", "bytesValue"}};

// a field name as its camelCase form; ``snake`` set when it was a snake_case one
std::string_view camel(std::string_view key, bool& snake) {
  if (key.find('_') == std::string_view::npos) return key;
  for (const auto& [from, to] : SNAKE_NAMES)
    if (key == from) {
      snake = true;
      return to;
    }
  return key;
}

// _g(d, camel, snake) takes the camelCase value unless it is null: an object that also has a
// camelCase name (after a snake_case one) is left to it
void one_naming(element obj) {
  for (key_value_pair f : as_object(obj))
    for (const auto& names : SNAKE_NAMES)
      if (f.key == names.second) throw Refuse("camelCase and snake_case names in one object");
}

// hex digit -> its lower-case form; 0 for anything else (a table: ids are random, so a
// branch per character would mispredict half the time)
struct HexTable {
  char to_lower[256] = {};
  HexTable() {
    for (char c = '0'; c <= '9'; ++c) to_lower[static_cast<unsigned char>(c)] = c;
    for (char c = 'a'; c <= 'f'; ++c) to_lower[static_cast<unsigned char>(c)] = c;
    for (char c = 'A'; c <= 'F'; ++c) to_lower[static_cast<unsigned char>(c)] = static_cast<char>(c - 'A' + 'a');
  }
};
const HexTable HEX;

// base64 digit -> its 6-bit value, -1 for anything else
struct Base64Table {
  int8_t value[256];
  Base64Table() {
    std::memset(value, -1, sizeof value);
    const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) value[static_cast<unsigned char>(digits[i])] = static_cast<int8_t>(i);
  }
};
const Base64Table BASE64;

// norm_id()'s base64 branch (protobuf's JSON mapping writes bytes so) for the padded form of
// n_chars / 2 bytes (8: 11 digits and "=", 16: 22 and "=="; the unused low bits are ignored,
// as binascii does): lower-case hex into dst; false for any other form (Python reads it)
bool base64_hex(std::string_view s, size_t n_chars, char* dst) {
  size_t nbytes = n_chars / 2, pad = (3 - nbytes % 3) % 3, len = (nbytes + 2) / 3 * 4;
  if (s.size() != len) return false;
  for (size_t i = len - pad; i < len; ++i)
    if (s[i] != '=') return false;
  static const char* HEXD = "0123456789abcdef";
  uint32_t bits = 0;
  int nbits = 0;
  size_t out = 0;
  for (size_t i = 0; i < len - pad; ++i) {
    int d = BASE64.value[static_cast<unsigned char>(s[i])];
    if (d < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(d);
    nbits += 6;
    if (nbits >= 8 && out < n_chars) {
      nbits -= 8;
      unsigned byte = (bits >> nbits) & 0xff;
      dst[out++] = HEXD[byte >> 4];
      dst[out++] = HEXD[byte & 15];
    }
  }
  return out == n_chars;
}

// norm_id() for ids of n_chars hex digits (any case) or the padded base64 of as many bytes,
// written as lower-case hex into ``out``; false when absent (null, or "" if ``empty_ok``).
// Anything else refuses.
bool hex_id(element v, size_t n_chars, StrCol& out, bool empty_ok) {
  element_type t = v.type();
  if (t == element_type::NULL_VALUE) return false;
  if (t != element_type::STRING) throw Refuse("id of another JSON type");
  std::string_view s = v.get_string().value();
  if (s.empty() && empty_ok) return false;
  std::string& buf = out.buf();
  size_t at = buf.size();
  buf.resize(at + n_chars);
  char* dst = &buf[at];
  if (s.size() == n_chars) {
    const auto* src = reinterpret_cast<const unsigned char*>(s.data());
    bool bad = false;
    for (size_t i = 0; i < n_chars; ++i) {
      char c = HEX.to_lower[src[i]];
      bad |= c == 0;
      dst[i] = c;
    }
    if (bad) {
      buf.resize(at);
      throw Refuse("id that is not hex");
    }
  } else if (!base64_hex(s, n_chars, dst)) {
    buf.resize(at);
    throw Refuse("id that is neither hex nor base64 of its length");
  }
  if (std::string_view(dst, n_chars).find_first_not_of('0') == std::string_view::npos) {  // all-zero: invalid per the OTLP spec
    buf.resize(at);
    if (empty_ok) return false;  // a parent of zeros means none: a root span, as otlp.py reads it
    throw Refuse("all-zero id");  // otlp.py rejects the span and counts it
  }
  out.close();
  return true;
}

// --- attribute values (AnyValue) ------------------------------------------------------------
struct AnyVal {
  enum Kind { NONE, STR, INT, DBL, BOOL, EMPTY_LIST, OTHER } kind = NONE;
  bool from_list = false;  // the first element of an arrayValue (markers accept that)
  std::string_view str;    // STR: valid until the next line is parsed
  element raw;             // the AnyValue object itself (read_attrs sets it): lists and maps print from it
  int64_t i = 0;
  double d = 0;
  bool b = false;
};

// otlp.any_value(): the first recognised key decides, unknown keys are skipped
AnyVal any_value(element v) {
  AnyVal out;
  if (v.is_null()) return out;
  if (v.type() != element_type::OBJECT) throw Refuse("attribute value is not an object");
  for (key_value_pair field : as_object(v)) {
    std::string_view key = field.key;
    element val = field.value;
    element_type t = val.type();
    bool snake = false;  // (the first recognised name decides, in either form)
    key = camel(key, snake);
    if (key == "stringValue" || key == "bytesValue") {  // (base64 text, kept as it is)
      if (t == element_type::NULL_VALUE) return out;
      if (t != element_type::STRING) throw Refuse("string value of another type");
      out.kind = AnyVal::STR;
      out.str = val.get_string().value();
      return out;
    }
    if (key == "intValue") {
      if (t == element_type::NULL_VALUE) return out;
      out.kind = AnyVal::INT;
      out.i = json_int(val);
      return out;
    }
    if (key == "boolValue") {
      if (t != element_type::BOOL) throw Refuse("boolValue of another type");
      out.kind = AnyVal::BOOL;
      out.b = val.get_bool().value();
      return out;
    }
    if (key == "arrayValue") {
      if (t != element_type::OBJECT) throw Refuse("arrayValue is not an object");
      for (key_value_pair af : as_object(val)) {
        if (af.key != "values") throw Refuse("arrayValue key");
        if (af.value.type() != element_type::ARRAY) throw Refuse("arrayValue.values is not an array");
        for (element elem : as_array(af.value)) {
          AnyVal first = any_value(elem);
          if (first.from_list || first.kind == AnyVal::EMPTY_LIST) first.kind = AnyVal::OTHER;
          first.from_list = true;
          return first;
        }
        out.kind = AnyVal::EMPTY_LIST;
        return out;
      }
      throw Refuse("arrayValue without values");
    }
    if (key == "doubleValue") {  // float(val) for JSON numbers; text ("NaN", "1.5") refuses
      if (t == element_type::NULL_VALUE) return out;
      if (t != element_type::INT64 && t != element_type::UINT64 && t != element_type::DOUBLE)
        throw Refuse("doubleValue of another type");
      out.kind = AnyVal::DBL;
      out.d = json_double(val);
      return out;
    }
    if (key == "kvlistValue") {
      out.kind = AnyVal::OTHER;
      return out;
    }
  }
  return out;
}

// str(v) of the Python path for a scalar (None -> false)
bool python_str(const AnyVal& a, std::string& out) {
  switch (a.kind) {
    case AnyVal::NONE:
      return false;
    case AnyVal::STR:
      out.assign(a.str);
      return true;
    case AnyVal::INT:
      out = std::to_string(a.i);
      return true;
    case AnyVal::BOOL:
      out = a.b ? "True" : "False";
      return true;
    case AnyVal::DBL:
      out.clear();
      repr_float(a.d, out);
      return true;
    default:
      throw Refuse("attribute value the Python path must read");
  }
}

// --- the attribute keys (otlp.ATTR_COLUMNS, MARKER_FIELDS): tables.hpp, from _tables.py ------
using namespace tables;  // A_HTTP_METHOD .. N_SPAN_ATTRS, SPAN_ATTR_KEYS, MARKER_FIELDS

// attribute key -> (column, rank in its group): one hash probe per attribute instead of a scan
// of every column's keys
// (open addressing on the length and three bytes, as compose.cpp's KeyIndex: an unknown key
// usually costs one probe and no comparison)
struct AttrIndex {
  struct Slot {
    std::string_view key;
    std::pair<int, int> at{-1, -1};
  };
  static constexpr size_t MASK = 511;
  std::array<Slot, MASK + 1> table;
  static size_t hash(std::string_view k) {
    auto b = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(k[i])); };
    return (k.size() * 131 + b(0) * 31 + b(k.size() - 1) * 7 + b(k.size() / 2) * 3) & MASK;
  }
  AttrIndex() {
    for (int col = 0; col < N_SPAN_ATTRS; ++col)
      for (int r = 0; r < static_cast<int>(std::size(SPAN_ATTR_KEYS[col])); ++r) {
        std::string_view k = SPAN_ATTR_KEYS[col][r];
        if (k.empty()) continue;
        size_t h = hash(k);
        while (table[h].at.first >= 0) h = (h + 1) & MASK;
        table[h] = {k, {col, r}};
      }
  }
  const std::pair<int, int>* find(std::string_view key) const {
    if (key.empty()) return nullptr;
    for (size_t h = hash(key);; h = (h + 1) & MASK) {
      const Slot& s = table[h];
      if (s.at.first < 0) return nullptr;
      if (s.key == key) return &s.at;
    }
  }
};
const AttrIndex ATTR_INDEX;

bool is_extracted(std::string_view key) { return ATTR_INDEX.find(key) != nullptr; }

bool is_resource_column(std::string_view key) {
  for (auto k : RESOURCE_COLUMNS)
    if (k == key) return true;
  return false;
}

// orjson.dumps(otlp.any_value(v)): the first recognised key decides, as in any_value()
[[gnu::noinline]]  // (rare: lists and maps; kept out of OtlpBlock::span)
void anyvalue_json(element v, std::string& out) {
  if (v.is_null()) {
    out += "null";
    return;
  }
  if (v.type() != element_type::OBJECT) throw Refuse("attribute value is not an object");
  for (key_value_pair field : as_object(v)) {
    std::string_view key = field.key;
    element val = field.value;
    element_type t = val.type();
    bool snake = false;
    key = camel(key, snake);
    if (key == "stringValue" || key == "bytesValue") {
      if (t == element_type::NULL_VALUE) {
        out += "null";
      } else {
        if (t != element_type::STRING) throw Refuse("string value of another type");
        out += '"';
        json_escape(out, val.get_string().value());
        out += '"';
      }
    } else if (key == "intValue") {
      if (t == element_type::NULL_VALUE) out += "null";
      else out += std::to_string(json_int(val));
    } else if (key == "doubleValue") {
      if (t == element_type::NULL_VALUE) {
        out += "null";
      } else {
        if (t != element_type::INT64 && t != element_type::UINT64 && t != element_type::DOUBLE)
          throw Refuse("doubleValue of another type");
        orjson_float(json_double(val), out);
      }
    } else if (key == "boolValue") {
      if (t != element_type::BOOL) throw Refuse("boolValue of another type");
      out += val.get_bool().value() ? "true" : "false";
    } else if (key == "arrayValue" || key == "kvlistValue") {
      bool kv = key == "kvlistValue";
      out += kv ? '{' : '[';
      if (!val.is_null()) {
        if (t != element_type::OBJECT) throw Refuse("array or kvlist value is not an object");
        for (key_value_pair af : as_object(val)) {
          if (af.key != "values") throw Refuse("array or kvlist key");
          if (af.value.type() != element_type::ARRAY) throw Refuse("values is not an array");
          bool first = true;
          std::vector<std::string_view> seen;
          for (element item : as_array(af.value)) {
            if (!first) out += ',';
            first = false;
            if (!kv) {
              anyvalue_json(item, out);
              continue;
            }
            if (item.type() != element_type::OBJECT) throw Refuse("kvlist entry is not an object");
            std::string_view k;
            bool has_key = false;
            element value;
            bool has_value = false;
            for (key_value_pair e : as_object(item)) {
              if (e.key == "key") {
                if (e.value.type() != element_type::STRING) throw Refuse("kvlist key is not a string");
                k = e.value.get_string().value();
                has_key = true;
              } else if (e.key == "value") {
                value = e.value;
                has_value = true;
              }
            }
            if (!has_key) throw Refuse("kvlist entry without key");
            for (auto sk : seen)
              if (sk == k) throw Refuse("repeated kvlist key");
            seen.push_back(k);
            out += '"';
            json_escape(out, k);
            out += "\":";
            if (has_value) anyvalue_json(value, out);
            else out += "null";
          }
        }
      }
      out += kv ? '}' : ']';
    } else {
      continue;  // unknown keys are skipped
    }
    return;
  }
  out += "null";
}

// otlp._text(): map text of an attribute value; false for None (lists and maps as JSON)
bool attr_text(const AnyVal& a, std::string& out) {
  out.clear();
  if (a.from_list || a.kind == AnyVal::EMPTY_LIST || a.kind == AnyVal::OTHER) {
    anyvalue_json(a.raw, out);
    return true;
  }
  switch (a.kind) {
    case AnyVal::NONE: return false;
    case AnyVal::STR: out.assign(a.str); break;
    case AnyVal::INT: out = std::to_string(a.i); break;
    case AnyVal::BOOL: out = a.b ? "true" : "false"; break;
    case AnyVal::DBL: orjson_float(a.d, out); break;
    default: break;
  }
  return true;
}

// otlp._marker_key(): 'anomaly.type' / 'x-anomaly-type' / '...header.x-anomaly-type' -> index
int marker_index(std::string_view key) {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  auto find_ci = [&](std::string_view pat) -> size_t {  // ASCII case-insensitive find
    for (size_t i = 0; i + pat.size() <= key.size(); ++i) {
      size_t j = 0;
      while (j < pat.size() && lower(key[i + j]) == pat[j]) ++j;
      if (j == pat.size()) return i;
    }
    return std::string_view::npos;
  };
  size_t at = find_ci("anomaly");
  if (at == std::string_view::npos) return -1;  // (every marker key contains it)
  for (char c : key)
    if (static_cast<unsigned char>(c) >= 0x80) throw Refuse("non-ASCII attribute key");
  std::string_view rest;
  if (at == 0 && key.size() > 7 && key[7] == '.') {
    rest = key.substr(8);
  } else {
    size_t i = find_ci("x-anomaly-");
    if (i == std::string_view::npos) return -1;
    rest = key.substr(i + 10);
  }
  for (size_t m = 0; m < std::size(MARKER_FIELDS); ++m) {
    std::string_view want = MARKER_FIELDS[m];
    if (rest.size() != want.size()) continue;
    size_t j = 0;
    while (j < want.size() && (rest[j] == '-' ? '_' : lower(rest[j])) == want[j]) ++j;
    if (j == want.size()) return static_cast<int>(m);
  }
  return -1;
}

// --- the columns ----------------------------------------------------------------------------
struct SpanColumns {
  I64Col time_ms{"i64"}, end_time_ms{"i64"}, start_time_unix_nano{"i64"}, kind{"i64"}, status_code{"i64"},
      http_status{"i64"};
  F64Col duration_ms{"f64"};
  StrCol trace_id, span_id, parent_span_id, service, host, region, name, status_message, scope, http_method,
      http_path, http_route, trace_state, events, links;
  std::array<StrCol, N_SPAN_ATTRS - A_SERVER_ADDRESS> strings;  // tables::SPAN_ATTR_NAMES from server_address on
  MapCol attributes, resource;
  I64Col flags{"i64"};
  std::array<StrCol, 4> markers;
  std::vector<size_t> span_resource;  // per span: index into resources

  void reserve(size_t n) {
    for (I64Col* c : {&time_ms, &end_time_ms, &start_time_unix_nano, &kind, &status_code, &http_status}) c->reserve(n);
    duration_ms.reserve(n);
    trace_id.reserve(n, 32);
    span_id.reserve(n, 16);
    parent_span_id.reserve(n, 16);
    span_resource.reserve(n);
    for (StrCol* c : {&service, &host, &region, &name, &status_message, &scope, &http_method, &http_path, &http_route,
                      &trace_state, &events, &links})
      c->reserve(n, c == &name || c == &http_path ? n * 16 : 0);
    for (StrCol& c : strings) c.reserve(n, 0);
    for (StrCol& c : markers) c.reserve(n, 0);
    flags.reserve(n);
  }

  // back to the first n spans (a refused line's rows); service, host, region and resource are
  // only filled by OtlpBlock::finish
  void truncate(size_t n) {
    for (I64Col* c : {&time_ms, &end_time_ms, &start_time_unix_nano, &kind, &status_code, &http_status, &flags})
      c->truncate(n);
    duration_ms.truncate(n);
    for (StrCol* c : {&trace_id, &span_id, &parent_span_id, &name, &status_message, &scope, &http_method, &http_path,
                      &http_route, &trace_state, &events, &links})
      c->truncate(n);
    for (StrCol& c : strings) c.truncate(n);
    for (StrCol& c : markers) c.truncate(n);
    attributes.truncate(n);  // (also the entries of a map row not closed yet)
    span_resource.resize(n);
  }

  bool strings_to_dict(PyObject* d) const {
    for (size_t i = 0; i < strings.size(); ++i) {
      std::string name(SPAN_ATTR_NAMES[A_SERVER_ADDRESS + i]);
      if (!put(d, name.c_str(), strings[i])) return false;
    }
    return true;
  }

  bool to_dict(PyObject* d) const {
    return put(d, "time_ms", time_ms) && put(d, "end_time_ms", end_time_ms) &&
           put(d, "start_time_unix_nano", start_time_unix_nano) && put(d, "duration_ms", duration_ms) &&
           put(d, "trace_id", trace_id) && put(d, "span_id", span_id) && put(d, "parent_span_id", parent_span_id) &&
           put(d, "service", service) && put(d, "host", host) && put(d, "region", region) && put(d, "name", name) &&
           put(d, "kind", kind) && put(d, "status_code", status_code) && put(d, "status_message", status_message) &&
           put(d, "scope", scope) && put(d, "http_method", http_method) && put(d, "http_path", http_path) &&
           put(d, "http_route", http_route) && put(d, "http_status", http_status) && strings_to_dict(d) &&
           put(d, "attributes", attributes) && put(d, "resource", resource) && put(d, "flags", flags) &&
           put(d, "trace_state", trace_state) && put(d, "events", events) && put(d, "links", links) &&
           put(d, "marker_type", markers[0]) &&
           put(d, "marker_label", markers[1]) && put(d, "marker_root_cause", markers[2]) &&
           put(d, "marker_msg", markers[3]);
  }
};

struct Resource {  // otlp._resource_info()
  std::string service = "unknown_service";
  std::string host, region;
  bool has_host = false, has_region = false;
  std::vector<std::pair<std::string, std::string>> rest;  // the other attributes (map text)
  std::vector<bool> rest_valid;
};

struct Attr {
  std::string_view key;
  AnyVal val;
};

// attrs_to_dict(): a list of {"key", "value"} objects; duplicate keys keep the first position
// and the last value, as a Python dict does
void read_attrs(element v, std::vector<Attr>& out) {
  out.clear();
  if (v.is_null()) return;
  if (v.type() != element_type::ARRAY) throw Refuse("attributes is not a list");
  for (element kv : as_array(v)) {
    if (kv.type() != element_type::OBJECT) throw Refuse("attribute is not an object");
    std::string_view key;
    bool has_key = false;
    AnyVal val;
    for (key_value_pair field : as_object(kv)) {
      if (field.key == "key") {
        if (field.value.type() != element_type::STRING) throw Refuse("attribute key is not a string");
        key = field.value.get_string().value();
        has_key = true;
      } else if (field.key == "value") {
        val = any_value(field.value);
        val.raw = field.value;
      }
    }
    if (!has_key) throw Refuse("attribute without key");
    bool dup = false;
    for (auto& a : out)
      if (a.key == key) {
        a.val = val;
        dup = true;
        break;
      }
    if (!dup) out.push_back({key, val});
  }
}

const Attr* find_attr(const std::vector<Attr>& attrs, std::string_view key) {
  for (const auto& a : attrs)
    if (a.key == key) return &a;
  return nullptr;
}

// resource attributes: only service.name, host.name / k8s.pod.name, cloud.region / region matter
Resource read_resource(element v, std::vector<Attr>& scratch) {
  Resource r;
  if (v.is_null()) return r;
  if (v.type() != element_type::OBJECT) throw Refuse("resource is not an object");
  for (key_value_pair field : as_object(v)) {
    if (field.key == "attributes") read_attrs(field.value, scratch);  // (otlp.py reads no other)
  }
  auto text = [&](std::string_view key, std::string& out) -> int {  // 0 absent/None, 1 "", 2 value
    const Attr* a = find_attr(scratch, key);
    if (!a || a->val.kind == AnyVal::NONE) return 0;
    if (a->val.kind != AnyVal::STR || a->val.from_list) throw Refuse("non-string resource identity");
    out.assign(a->val.str);
    return out.empty() ? 1 : 2;
  };
  std::string s;
  for (const Attr& a : scratch) {
    if (is_resource_column(a.key)) continue;
    bool valid = attr_text(a.val, s);
    r.rest.emplace_back(std::string(a.key), s);
    r.rest_valid.push_back(valid);
  }
  if (text("service.name", s) == 2) r.service = s;
  // Python's `a or b`: a when truthy, else b (even "" or None)
  for (auto [first, second, dest, has] :
       {std::tuple{"host.name", "k8s.pod.name", &r.host, &r.has_host},
        std::tuple{"cloud.region", "region", &r.region, &r.has_region}}) {
    std::string a, b;
    if (text(first, a) == 2) {
      *dest = a;
      *has = true;
    } else {
      int got = text(second, b);
      *has = got > 0;
      *dest = b;
    }
  }
  scratch.clear();
  return r;
}

// an item of a span's events: {"name", "time_unix_nano"} (OtlpBlock::records adds the attributes)
struct EventItem {
  static constexpr const char* WHAT = "event";
  std::string_view name;
  bool has_name = false;
  int64_t t = -1;

  bool field(std::string_view key, element v) {  // false: not one of its keys
    if (key == "name") {
      if (v.is_null()) return true;
      if (v.type() != element_type::STRING) throw Refuse("event name is not a string");
      name = v.get_string().value();
      has_name = true;
    } else if (key == "timeUnixNano") {
      if (v.type() == element_type::INT64 && v.get_int64().value() < 0) throw Refuse("event time");
      t = nanos(v);
    } else {
      return false;
    }
    return true;
  }
  void write(std::string& out) const {
    out += "\"name\":";
    if (has_name) {
      out += '"';
      json_escape(out, name);
      out += '"';
    } else {
      out += "null";
    }
    out += ",\"time_unix_nano\":";
    out += t < 0 ? "null" : std::to_string(t);
  }
};

// norm_id() of a link id as JSON: lower-case hex of n chars (from hex or base64), or null for
// null / ""; anything else refuses
void id_json(element v, size_t n, std::string& out) {
  if (v.is_null()) {
    out += "null";
    return;
  }
  if (v.type() != element_type::STRING) throw Refuse("link id of another type");
  std::string_view s = v.get_string().value();
  if (s.empty()) {
    out += "null";
    return;
  }
  out += '"';
  size_t at = out.size();
  out.resize(at + n);
  if (s.size() == n) {
    for (size_t i = 0; i < n; ++i) {
      char c = HEX.to_lower[static_cast<unsigned char>(s[i])];
      if (c == 0) throw Refuse("link id that is not hex");
      out[at + i] = c;
    }
  } else if (!base64_hex(s, n, &out[at])) {
    throw Refuse("link id that is neither hex nor base64 of its length");
  }
  out += '"';
}

// an item of a span's links: {"trace_id", "span_id", "trace_state"}
struct LinkItem {
  static constexpr const char* WHAT = "link";
  element tid, sid;
  bool has_tid = false, has_sid = false;
  std::string_view state;

  bool field(std::string_view key, element v) {
    if (key == "traceId") {
      tid = v;
      has_tid = true;
    } else if (key == "spanId") {
      sid = v;
      has_sid = true;
    } else if (key == "traceState") {
      if (v.is_null()) return true;
      if (v.type() != element_type::STRING) throw Refuse("link traceState is not a string");
      state = v.get_string().value();
    } else {
      return false;
    }
    return true;
  }
  void write(std::string& out) const {
    out += "\"trace_id\":";
    if (has_tid) id_json(tid, 32, out);
    else out += "null";
    out += ",\"span_id\":";
    if (has_sid) id_json(sid, 16, out);
    else out += "null";
    out += ",\"trace_state\":";
    if (state.empty()) {
      out += "null";
    } else {
      out += '"';
      json_escape(out, state);
      out += '"';
    }
  }
};

class OtlpBlock {
 public:
  explicit OtlpBlock(size_t bytes) { c_.reserve(bytes / 256); }  // ~400 bytes per span in practice

  // one line: its spans are added whole or, refused, not at all (``index`` in the block and the
  // reason go to refused())
  void line(const char* s, size_t n, simdjson::dom::parser& parser, int64_t index) {
    size_t rows = c_.span_resource.size(), resources = resources_.size();
    try {
      if (*s != '{') throw Refuse("a line is not a JSON object");
      // the bytes after the line (the next lines, then the padding) are readable: no copy
      read_doc(parser.parse(s, n, false).value());
      return;
    } catch (const Refuse& r) {
      refused_.push_back({index, r.what(), rows});
    } catch (const simdjson::simdjson_error& e) {
      refused_.push_back({index, std::string("JSON: ") + e.what(), rows});
    }
    c_.truncate(rows);
    resources_.resize(resources);
  }

  struct Refused {
    int64_t index;       // line in the block (blank lines count)
    std::string reason;
    size_t rows_before;  // spans of the block's earlier lines taken here: where its rows go
  };
  const std::vector<Refused>& refused() const { return refused_; }

  // the refused lines as (index, reason, rows_before) appended to a Python list
  bool put_refused(PyObject* list) const {
    for (const Refused& r : refused_) {
      PyObject* item = Py_BuildValue("(Lsn)", static_cast<long long>(r.index), r.reason.c_str(),
                                     static_cast<Py_ssize_t>(r.rows_before));
      if (item == nullptr || PyList_Append(list, item) < 0) {
        Py_XDECREF(item);
        return false;
      }
      Py_DECREF(item);
    }
    return true;
  }

 private:
  void read_doc(element doc) {
    if (doc.type() != element_type::OBJECT) throw Refuse("a line is not a JSON object");
    bool seen = false, snake = false;
    for (key_value_pair field : as_object(doc)) {
      if (camel(field.key, snake) != "resourceSpans") throw Refuse("other top-level keys");
      if (seen) throw Refuse("repeated resourceSpans");
      if (field.value.type() != element_type::ARRAY) throw Refuse("resourceSpans is not a list");
      for (element rs : as_array(field.value)) resource_spans(rs);
      seen = true;
    }
    if (!seen) throw Refuse("line without resourceSpans");
    if (snake) one_naming(doc);
  }

 public:
  bool finish(PyObject* d) {
    for (size_t r : c_.span_resource) {
      const Resource& res = resources_[r];
      c_.service.add(res.service);
      if (res.has_host) c_.host.add(res.host);
      else c_.host.null();
      if (res.has_region) c_.region.add(res.region);
      else c_.region.null();
      if (res.rest.empty()) {
        c_.resource.null();
      } else {
        for (size_t i = 0; i < res.rest.size(); ++i) {
          c_.resource.keys.add(res.rest[i].first);
          if (res.rest_valid[i]) c_.resource.values.add(res.rest[i].second);
          else c_.resource.values.null();
        }
        c_.resource.close();
      }
    }
    return c_.to_dict(d);
  }

 private:
  // otlp._doc_spans: ``scopeSpans or instrumentationLibrarySpans or []`` (the second is the
  // name before OTLP 0.15): a list's truthiness decides, anything but a list or null refuses
  static bool nonempty_list(element v) {
    if (v.is_null()) return false;
    if (v.type() != element_type::ARRAY) throw Refuse("scopeSpans is not a list");
    return as_array(v).begin() != as_array(v).end();
  }

  void resource_spans(element v) {
    if (v.type() != element_type::OBJECT) throw Refuse("resourceSpans entry is not an object");
    size_t index = resources_.size();
    resources_.emplace_back();
    bool snake = false, has_scopes = false, has_old = false;
    element scopes, old;
    for (key_value_pair field : as_object(v)) {
      std::string_view k = camel(field.key, snake);
      if (k == "resource") {
        resources_[index] = read_resource(field.value, scratch_);
      } else if (k == "scopeSpans") {
        if (has_scopes) throw Refuse("repeated scopeSpans");
        scopes = field.value;
        has_scopes = true;
      } else if (k == "instrumentationLibrarySpans") {
        if (has_old) throw Refuse("repeated instrumentationLibrarySpans");
        old = field.value;
        has_old = true;
      } else if (k != "schemaUrl") {
        throw Refuse("resourceSpans key the Python path must read");
      }
    }
    if (snake) one_naming(v);
    element list;
    if (has_scopes && nonempty_list(scopes)) list = scopes;
    else if (has_old && nonempty_list(old)) list = old;
    else return;
    for (element ss : as_array(list)) scope_spans(ss, index);
  }

  // otlp._scope_name: the name of ``scope or instrumentationLibrary or instrumentation_library``
  // (the first non-empty object; null and {} are passed over, other values refuse)
  static void scope_name(element v, std::string& name, bool& has_name, bool& decided) {
    if (decided || v.is_null()) return;
    if (v.type() != element_type::OBJECT) throw Refuse("scope is not an object");
    simdjson::dom::object obj = as_object(v);
    if (obj.begin() == obj.end()) return;  // {} is falsy: the next candidate decides
    decided = true;
    for (key_value_pair sf : obj) {
      if (sf.key != "name" || sf.value.is_null()) continue;
      if (sf.value.type() != element_type::STRING) throw Refuse("scope name is not a string");
      std::string_view nm = sf.value.get_string().value();
      name.assign(nm);
      has_name = !nm.empty();
    }
  }

  void scope_spans(element v, size_t resource) {
    if (v.type() != element_type::OBJECT) throw Refuse("scopeSpans entry is not an object");
    // the scope may come after the spans: fill it in afterwards
    size_t first = c_.span_resource.size();
    std::string scope;
    bool has_scope = false, snake = false, seen = false;
    std::array<element, 3> scopes;  // scope, instrumentationLibrary, instrumentation_library
    std::array<bool, 3> present{};
    for (key_value_pair field : as_object(v)) {
      std::string_view k = camel(field.key, snake);
      int which = k == "scope" ? 0 : k == "instrumentationLibrary" ? 1 : k == "instrumentation_library" ? 2 : -1;
      if (which >= 0) {
        scopes[which] = field.value;  // (a repeated key: the last one, as in a dict)
        present[which] = true;
      } else if (k == "spans") {
        if (seen) throw Refuse("repeated spans");
        seen = true;
        if (field.value.is_null()) continue;
        if (field.value.type() != element_type::ARRAY) throw Refuse("spans is not a list");
        for (element sp : as_array(field.value)) span(sp, resource);
      } else if (k != "schemaUrl") {
        throw Refuse("scopeSpans key the Python path must read");
      }
    }
    bool decided = false;
    for (size_t i = 0; i < scopes.size(); ++i)
      if (present[i]) scope_name(scopes[i], scope, has_scope, decided);
    for (size_t i = first; i < c_.span_resource.size(); ++i) {
      if (has_scope) c_.scope.add(scope);
      else c_.scope.null();
    }
  }

  // flatten: the per-span helpers (column pushes, simdjson accessors, read_attrs, the attribute
  // columns) inlined here; left to itself GCC hit its unit growth limit once events and links
  // came in and called them out of line (~25% more parse time). Cold JSON writers stay calls.
  [[gnu::flatten]] void span(element v, size_t resource) {
    if (v.type() != element_type::OBJECT) throw Refuse("span is not an object");
    // ids go straight into their columns (a refusal drops the whole block, so a span is
    // never half-added); the other columns are appended once the span is known to be good
    bool has_trace = false, has_span = false, has_parent = false, seen_parent = false, has_msg = false;
    bool has_flags = false, snake = false;
    int64_t start = -1, end = -1, kind = 0, code = 0, flags = 0;
    std::string_view name, msg, state;
    attrs_.clear();
    events_.clear();
    links_.clear();
    for (key_value_pair field : as_object(v)) {
      std::string_view k = camel(field.key, snake);
      element val = field.value;
      if (k == "traceId") {
        if (has_trace) throw Refuse("repeated traceId");
        has_trace = hex_id(val, 32, c_.trace_id, false);
      } else if (k == "spanId") {
        if (has_span) throw Refuse("repeated spanId");
        has_span = hex_id(val, 16, c_.span_id, false);
      } else if (k == "parentSpanId") {
        if (seen_parent) throw Refuse("repeated parentSpanId");
        seen_parent = true;
        has_parent = hex_id(val, 16, c_.parent_span_id, true);
      } else if (k == "name") {
        name = val.type() == element_type::STRING ? val.get_string().value() : std::string_view();
      } else if (k == "kind") {
        kind = enum_value(val, KIND_NAMES);
      } else if (k == "startTimeUnixNano") {
        start = nanos(val);
      } else if (k == "endTimeUnixNano") {
        end = nanos(val);
      } else if (k == "attributes") {
        read_attrs(val, attrs_);
      } else if (k == "flags") {
        if (val.is_null()) continue;
        if (val.type() != element_type::INT64) throw Refuse("span flags the Python path must read");
        flags = val.get_int64().value();
        has_flags = flags >= 0 && flags < (int64_t{1} << 32);
      } else if (k == "traceState") {
        if (val.is_null()) continue;
        if (val.type() != element_type::STRING) throw Refuse("traceState is not a string");
        state = val.get_string().value();
      } else if (k == "events") {
        events_.clear();
        if (!val.is_null()) records<EventItem>(val, events_);
      } else if (k == "links") {
        links_.clear();
        if (!val.is_null()) records<LinkItem>(val, links_);
      } else if (k == "status") {
        if (val.is_null()) continue;
        if (val.type() != element_type::OBJECT) throw Refuse("status is not an object");
        for (key_value_pair sf : as_object(val)) {
          element sv = sf.value;
          if (sf.key == "code") {
            code = enum_value(sv, STATUS_NAMES);
          } else if (sf.key == "message") {
            if (sv.is_null()) continue;
            if (sv.type() != element_type::STRING) throw Refuse("status message is not a string");
            msg = sv.get_string().value();
            has_msg = !msg.empty();
          }
        }
      }
    }
    if (snake) one_naming(v);
    // spans otlp.py would reject go there, with their reasons and line numbers
    if (!has_trace || !has_span) throw Refuse("span without ids");
    if (start <= 0) throw Refuse("span without a start time");
    if (end <= 0) end = start;

    c_.time_ms.add(start / 1000000);
    c_.end_time_ms.add(end / 1000000);
    c_.start_time_unix_nano.add(start);
    c_.duration_ms.add(static_cast<double>(end - start) / 1e6);
    if (!has_parent) c_.parent_span_id.null();
    c_.name.add(name);
    c_.kind.add(kind >= 0 && kind <= 5 ? kind : 0);
    c_.status_code.add(code >= 0 && code <= 2 ? code : 0);
    if (has_msg) c_.status_message.add(msg);
    else c_.status_message.null();
    c_.span_resource.push_back(resource);
    if (has_flags) c_.flags.add(flags);
    else c_.flags.null();
    if (!state.empty()) c_.trace_state.add(state);
    else c_.trace_state.null();
    if (events_.empty()) c_.events.null();
    else c_.events.add(events_);
    if (links_.empty()) c_.links.null();
    else c_.links.add(links_);
    attribute_columns();
  }

  // {"k": value, ...} of read_attrs() output, as orjson.dumps writes attrs_to_dict(); "null" if empty
  void attrs_json(const std::vector<Attr>& attrs, std::string& out) {
    if (attrs.empty()) {
      out += "null";
      return;
    }
    out += '{';
    bool first = true;
    for (const Attr& a : attrs) {
      if (!first) out += ',';
      first = false;
      out += '"';
      json_escape(out, a.key);
      out += "\":";
      if (a.val.from_list || a.val.kind == AnyVal::EMPTY_LIST || a.val.kind == AnyVal::OTHER) {
        anyvalue_json(a.val.raw, out);
        continue;
      }
      switch (a.val.kind) {
        case AnyVal::NONE: out += "null"; break;
        case AnyVal::STR:
          out += '"';
          json_escape(out, a.val.str);
          out += '"';
          break;
        case AnyVal::INT: out += std::to_string(a.val.i); break;
        case AnyVal::DBL: orjson_float(a.val.d, out); break;
        case AnyVal::BOOL: out += a.val.b ? "true" : "false"; break;
        default: anyvalue_json(a.val.raw, out);
      }
    }
    out += '}';
  }

  // otlp._events() and otlp._links(): one JSON object per item of the list, its own fields
  // (``Item``: EventItem, LinkItem) then its attributes; "" when the list is empty
  template <class Item>
  [[gnu::noinline]]  // (kept out of span(), see there)
  void records(element v, std::string& out) {
    if (v.type() != element_type::ARRAY) throw Refuse(std::string(Item::WHAT) + "s is not a list");
    for (element each : as_array(v)) {
      if (each.type() != element_type::OBJECT) throw Refuse(std::string(Item::WHAT) + " is not an object");
      Item item;
      scratch_.clear();
      bool snake = false;
      for (key_value_pair f : as_object(each)) {
        if (f.key == "attributes") read_attrs(f.value, scratch_);
        else item.field(camel(f.key, snake), f.value);  // (other names: otlp.py ignores them too)
      }
      if (snake) one_naming(each);
      out += out.empty() ? "[{" : ",{";
      item.write(out);
      out += ",\"attributes\":";
      attrs_json(scratch_, out);
      out += '}';
      scratch_.clear();
    }
    if (!out.empty()) out += ']';
  }

  void attribute_columns() {
    std::array<const Attr*, N_SPAN_ATTRS> found{};  // the first key of each group present wins
    std::array<int, N_SPAN_ATTRS> rank;
    rank.fill(1 << 30);
    for (const Attr& a : attrs_)
      if (const auto* hit = ATTR_INDEX.find(a.key))
        if (hit->second < rank[hit->first]) {
          rank[hit->first] = hit->second;
          found[hit->first] = &a;
        }
    auto plain = [&](const Attr* a) -> const AnyVal* {  // value or null for a column
      if (!a || a->val.kind == AnyVal::NONE) return nullptr;
      if (a->val.from_list) throw Refuse("list value in a mapped attribute");
      return &a->val;
    };
    // http_method: str(m).upper()
    if (const AnyVal* m = plain(found[A_HTTP_METHOD])) {
      python_str(*m, tmp_);
      for (char& c : tmp_) {
        if (static_cast<unsigned char>(c) >= 0x80) throw Refuse("non-ASCII method");
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
      c_.http_method.add(tmp_);
    } else {
      c_.http_method.null();
    }
    // http_path / http_route: strings only (the path without its query), else null
    for (auto [col, out, cut] :
         {std::tuple{A_HTTP_PATH, &c_.http_path, true}, std::tuple{A_HTTP_ROUTE, &c_.http_route, false}}) {
      const Attr* a = found[col];
      if (a && a->val.kind == AnyVal::STR && !a->val.from_list) {
        std::string_view s = a->val.str;
        if (cut) s = s.substr(0, s.find('?'));
        out->add(s);
      } else {
        if (a && a->val.kind == AnyVal::OTHER) throw Refuse("attribute value the Python path must read");
        // (a number or bool path is not a string: null, as in otlp.py)
        out->null();
      }
    }
    // http_status: int(code) within int32, else null
    {
      const Attr* a = found[A_HTTP_STATUS];
      int64_t v = 0;
      bool ok = false;
      if (a && a->val.kind != AnyVal::NONE) {
        if (a->val.from_list || a->val.kind == AnyVal::EMPTY_LIST) ok = false;  // int(list): TypeError -> None
        else if (a->val.kind == AnyVal::INT) { v = a->val.i; ok = true; }
        else if (a->val.kind == AnyVal::BOOL) { v = a->val.b; ok = true; }
        else if (a->val.kind == AnyVal::DBL) {  // int(float) truncates
          if (!(std::fabs(a->val.d) < 9e18)) throw Refuse("status code out of range");
          v = static_cast<int64_t>(a->val.d);
          ok = true;
        }
        else if (a->val.kind == AnyVal::STR) { v = parse_int_text(a->val.str); ok = true; }
        else throw Refuse("status code the Python path must read");
      }
      if (ok && v >= INT32_MIN && v <= INT32_MAX) c_.http_status.add(v);
      else c_.http_status.null();
    }
    for (size_t col = A_SERVER_ADDRESS; col < N_SPAN_ATTRS; ++col) {  // str(value)
      StrCol& out = c_.strings[col - A_SERVER_ADDRESS];
      const AnyVal* val = plain(found[col]);
      if (val && python_str(*val, tmp_)) out.add(tmp_);
      else out.null();
    }
    // markers leave the attributes; the mapped keys too; the rest becomes one JSON object
    std::array<bool, 4> has_marker{};
    std::array<std::string, 4> marker;
    size_t n_rest = 0;
    for (const Attr& a : attrs_) {
      int m = marker_index(a.key);
      if (m >= 0) {
        if (a.val.kind == AnyVal::EMPTY_LIST) {
          marker[m] = "[]";
          has_marker[m] = true;
        } else {
          has_marker[m] = python_str(a.val, marker[m]);
        }
        continue;
      }
      if (is_extracted(a.key)) continue;
      c_.attributes.keys.add(a.key);
      if (attr_text(a.val, tmp_)) c_.attributes.values.add(tmp_);
      else c_.attributes.values.null();
      ++n_rest;
    }
    if (n_rest) c_.attributes.close();
    else c_.attributes.null();
    for (size_t m = 0; m < 4; ++m) {
      if (has_marker[m]) c_.markers[m].add(marker[m]);
      else c_.markers[m].null();
    }
  }

  SpanColumns c_;
  std::vector<Refused> refused_;
  std::vector<Resource> resources_;
  std::vector<Attr> attrs_, scratch_;
  std::string tmp_, events_, links_;
};

}  // namespace

// parse_otlp_block(data: bytes, refused: list | None) -> {column: buffers} of the lines it
// takes. ``data`` is whole lines (LF or CRLF); blank lines are skipped. The lines it leaves to
// the Python reader are appended to ``refused`` as (line index in the block, reason, rows of
// the earlier lines); without that list any such line refuses the whole block (ValueError).
PyObject* parse_otlp_block(PyObject*, PyObject* args) {
  const char* buf;
  Py_ssize_t len;
  PyObject* refused = Py_None;
  if (!PyArg_ParseTuple(args, "y#|O", &buf, &len, &refused)) return nullptr;
  if (refused != Py_None && !PyList_Check(refused)) {
    PyErr_SetString(PyExc_TypeError, "refused must be a list or None");
    return nullptr;
  }
  return python_errors([&]() -> PyObject* {
    // one padded copy per call in a buffer kept across calls (fresh pages cost more than the copy)
    static std::vector<char> padded;
    padded.resize(static_cast<size_t>(len) + simdjson::SIMDJSON_PADDING);
    memcpy(padded.data(), buf, static_cast<size_t>(len));
    memset(padded.data() + len, 0, simdjson::SIMDJSON_PADDING);
    // (the GIL is held for the whole call: these statics are never used by two threads)
    static simdjson::dom::parser parser;
    OtlpBlock block(static_cast<size_t>(len));
    const char* p = padded.data();
    const char* end = p + len;
    int64_t index = 0;
    while (p < end) {
      const char* nl = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
      const char* stop = nl ? nl : end;
      const char* s = p;
      const char* e = stop;
      while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) ++s;
      while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) --e;
      if (e > s) {
        block.line(s, static_cast<size_t>(e - s), parser, index);
        if (refused == Py_None && !block.refused().empty()) throw Refuse(block.refused().front().reason);
      }
      ++index;
      p = nl ? nl + 1 : end;
    }
    if (refused != Py_None && !block.put_refused(refused)) return nullptr;
    return columns_dict(block);
  });
}

}  // namespace obslab
