// Compose log lines -> FLAT_LOG column buffers with simdjson (DOM: every value is validated,
// as orjson validates it).
//
// Mirrors the per-line parser in obslab/ocsf/compose.py (_Reader.line, _json_record, _text_record,
// _classify, timeparse.any_time_ms / search_time_ms) for lines ``<container> | <payload>``, with
// ANSI colour codes, blank lines and CRLF. JSON payloads: every JSON value type, nested ``http``
// objects, Mongo ``{"$date": ...}`` times, int()/float() of text, values printed as orjson prints
// them, a ``--timestamps`` time when the object has no time key. ASCII plain-text payloads: level
// word, access-line fields (ACCESS, COMBINED), the time of a ``--timestamps`` prefix or one near
// the start, else the time of the row before (when this block read it: ``inferred_rows``). ASCII
// lines with no ``<container> |`` prefix are rejected here as the reference rejects them. A line
// whose result this file cannot reproduce exactly is left to the Python reader, that line only (the
// block's other lines stay here): untimed plain text with no native timed row before it in the
// block since the last line left to Python, plain text with non-ASCII characters other than
// tables::INERT_TEXT_RANGES (Unicode regex rules), JSON the Python path would reject (no usable
// time), time strings that are not plain ASCII ISO 8601, non-ASCII text Python would upper-case or
// read as a number, invalid UTF-8, JSON whose numbers, escapes or depth simdjson rejects (a broken
// structure is text, as in Python). Refusing is always safe, guessing never is.
//
// One job stays in Python: the message regexes of _classify (ERROR_TEXT, LIFECYCLE) when the
// first 200 characters of a message are not ASCII (Unicode \b and case folding). Such rows get
// a null ``event`` and compose._native_block classifies them with compose._classify.
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "columns.hpp"
#include "tables.hpp"

namespace obslab {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// --- the keys compose.py reads (top level of the JSON object): tables.hpp, from _tables.py ---
using tables::KeyGroup;
using tables::LOG_KEYS;
constexpr int N_KEYS = tables::N_LOG_KEYS;
constexpr KeyGroup TIME = tables::G_TIME, LEVEL = tables::G_LEVEL, MESSAGE = tables::G_MESSAGE,
                   LOGGER = tables::G_LOGGER, HOST = tables::G_HOST, TRACE = tables::G_TRACE_ID,
                   SPAN = tables::G_SPAN_ID, METHOD = tables::G_HTTP_METHOD, PATH = tables::G_HTTP_PATH,
                   STATUS = tables::G_HTTP_STATUS, DURATION = tables::G_DURATION_MS,
                   ERROR_TYPE = tables::G_ERROR_TYPE, CLIENT_IP = tables::G_CLIENT_IP,
                   USER_AGENT = tables::G_USER_AGENT, HTTP_VERSION = tables::G_HTTP_VERSION;
constexpr int EVENT = tables::K_EVENT, REGION = tables::K_REGION, ERROR = tables::K_ERROR, HTTP = tables::K_HTTP;

// key -> index: open addressing on length and three bytes, so an unknown key usually costs
// one table probe and no comparison
class KeyIndex {
 public:
  KeyIndex() {
    table_.fill(-1);
    for (int i = 0; i < N_KEYS; ++i) {
      size_t h = hash(LOG_KEYS[i]);
      while (table_[h] >= 0) h = (h + 1) & MASK;
      table_[h] = static_cast<int8_t>(i);
    }
  }
  int find(std::string_view k) const {
    if (k.empty()) return -1;
    for (size_t h = hash(k);; h = (h + 1) & MASK) {
      int i = table_[h];
      if (i < 0) return -1;
      std::string_view c = LOG_KEYS[i];
      if (c.size() != k.size()) continue;
      size_t j = 0;  // (keys are short: a loop beats a memcmp call)
      while (j < k.size() && c[j] == k[j]) ++j;
      if (j == k.size()) return i;
    }
  }

 private:
  static constexpr size_t MASK = 1023;
  static size_t hash(std::string_view k) {
    auto b = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(k[i])); };
    return (k.size() * 131 + b(0) * 31 + b(k.size() - 1) * 7 + b(k.size() / 2) * 3) & MASK;
  }
  std::array<int8_t, MASK + 1> table_;
};
const KeyIndex KEY_INDEX;

// --- characters -----------------------------------------------------------------------------
// str.isspace() for ASCII (what str.strip()/lstrip() and the regex \s remove)
inline bool py_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
struct NameChars {  // [A-Za-z0-9_.\-] as a table (the prefix scan runs on every line)
  std::array<bool, 256> ok{};
  NameChars() {
    for (int c = 0; c < 256; ++c)
      ok[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-';
  }
};
const NameChars NAME_CHARS;
inline bool name_char(char c) { return NAME_CHARS.ok[static_cast<unsigned char>(c)]; }
inline bool word_char(char c) {  // regex \w for ASCII
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
}
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool ascii(std::string_view s) {  // eight bytes at a time
  const char* p = s.data();
  size_t n = s.size(), i = 0;
  uint64_t high = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    high |= w;
  }
  for (; i < n; ++i) high |= static_cast<unsigned char>(p[i]);
  return (high & 0x8080808080808080ull) == 0;
}

// --- times (timeparse.any_time_ms) ----------------------------------------------------------
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {  // H. Hinnant's algorithm
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
int month_days(int y, int m) {
  static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : DAYS[m - 1];
}

inline int two(const char* p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

// timeparse.parse_iso_ms(value.strip()) for ASCII text; anything else refuses (the Python
// path would go on to float() and search_time_ms)
int64_t iso_ms(std::string_view s) {
  if (!ascii(s)) throw Refuse("non-ASCII time text");
  while (!s.empty() && py_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && py_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  // (\d{4})[-/](\d{2})[-/](\d{2})[T ](\d{2}):(\d{2}):(\d{2})
  if (s.size() < 19) throw Refuse("time format");
  const char* c = s.data();
  bool digits = true;
  for (int at : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18}) digits &= is_digit(c[at]);
  if (!digits || (c[4] != '-' && c[4] != '/') || (c[7] != '-' && c[7] != '/') || (c[10] != 'T' && c[10] != ' ') ||
      c[13] != ':' || c[16] != ':')
    throw Refuse("time format");
  int y = two(s.data()) * 100 + two(s.data() + 2), mo = two(s.data() + 5), d = two(s.data() + 8);
  int h = two(s.data() + 11), mi = two(s.data() + 14), sec = two(s.data() + 17);
  size_t i = 19;
  int frac = 0;  // (?:[.,](\d+))? -> int((frac + "00")[:3])
  if (i + 1 < s.size() && (s[i] == '.' || s[i] == ',') && is_digit(s[i + 1])) {
    ++i;
    int n = 0;
    while (i < s.size() && is_digit(s[i])) {
      if (n < 3) frac = frac * 10 + (s[i] - '0');
      ++n;
      ++i;
    }
    for (; n < 3; ++n) frac *= 10;
  }
  if (i < s.size() && py_space(static_cast<unsigned char>(s[i]))) ++i;  // \s?
  int offset_min = 0;  // (Z|z|[+-]\d{2}:?\d{2}|UTC)?
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int sign = s[i] == '-' ? -1 : 1;
    std::string_view r = s.substr(i + 1);
    if (r.size() >= 2 && is_digit(r[0]) && is_digit(r[1])) {
      int oh = two(r.data()), om = -1;
      if (r.size() >= 5 && r[2] == ':' && is_digit(r[3]) && is_digit(r[4])) om = two(r.data() + 3);
      else if (r.size() >= 4 && is_digit(r[2]) && is_digit(r[3])) om = two(r.data() + 2);
      if (om >= 0) {
        if (oh * 60 + om >= 24 * 60) throw Refuse("time zone offset out of range");  // timezone() raises
        offset_min = sign * (oh * 60 + om);
      }
    }
  }
  // datetime() raises on these: the Python path then tries other readings
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59) throw Refuse("time out of range");
  int64_t minute_s = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 -
                     offset_min * 60;
  return minute_s * 1000 + sec * 1000 + frac;
}

// Python's float floor division (floatobject.c _float_div_mod), so results match to the bit
double py_floordiv(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0) {
    if ((wx < 0) != (mod < 0)) div -= 1.0;
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return floordiv;
}

// timeparse.epoch_to_ms(float(value)); None refuses (the Python path rejects the line)
int64_t epoch_ms(double v) {
  if (v != v || v <= 0 || v >= 9e18) throw Refuse("JSON log without a usable time");
  if (v > 1e17) return static_cast<int64_t>(py_floordiv(v, 1000000.0));
  if (v > 1e14) return static_cast<int64_t>(py_floordiv(v, 1000.0));
  if (v > 1e11) return static_cast<int64_t>(v);
  return static_cast<int64_t>(v * 1000);
}

int64_t time_ms(const element& v);
// Mongo {"$date": ...}: the first of these keys (a dict: its last value); out of line, so the
// recursion does not keep time_ms from being inlined
__attribute__((noinline)) int64_t mongo_time_ms(const element& v) {
  simdjson::dom::object o = v.get_object().value_unsafe();
  for (std::string_view key : {"$date", "$numberLong", "seconds"}) {
    const element* inner = nullptr;
    element found;
    for (auto f : o)
      if (f.key == key) {
        found = f.value;
        inner = &found;
      }
    if (inner != nullptr) return time_ms(*inner);
  }
  throw Refuse("JSON log without a usable time");
}

int64_t time_ms(const element& v) {
  switch (v.type()) {
    case element_type::STRING:
      return iso_ms(v.get_string().value_unsafe());
    case element_type::INT64:
      return epoch_ms(static_cast<double>(v.get_int64().value_unsafe()));
    case element_type::UINT64:
      return epoch_ms(static_cast<double>(v.get_uint64().value_unsafe()));
    case element_type::DOUBLE:
      return epoch_ms(v.get_double().value_unsafe());
    case element_type::OBJECT:
      return mongo_time_ms(v);
    default:  // bool, null, list: no time (the Python path rejects the line)
      throw Refuse("time value the Python path must read");
  }
}

// --- scalars --------------------------------------------------------------------------------
// int(text) for ASCII text (compose._int): blanks around, a sign, digits with single '_'
// between them; false where int() raises (None). Non-ASCII text (Unicode digits) refuses.
std::string_view strip(std::string_view s) {
  while (!s.empty() && py_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && py_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool int_text(std::string_view s, int64_t& out) {
  if (!ascii(s)) throw Refuse("non-ASCII integer text");
  s = strip(s);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i == s.size()) return false;
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (is_digit(c)) {
      if (v < (int64_t{1} << 40)) v = v * 10 + (c - '0');  // saturates far outside int32
    } else if (c != '_' || i == 0 || !is_digit(s[i - 1]) || i + 1 == s.size() || !is_digit(s[i + 1])) {
      return false;
    }
  }
  out = neg ? -v : v;
  return true;
}

// float(text) for ASCII text (compose._float): blanks, a sign, decimal text or inf/nan words;
// false where float() raises (None). Underscores, non-ASCII and overflow refuse.
bool float_text(std::string_view s, double& out) {
  if (!ascii(s)) throw Refuse("non-ASCII number text");
  s = strip(s);
  size_t i = 0, n = s.size();
  bool neg = false;
  if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  std::string word;
  for (size_t k = i; k < n && word.size() < 9; ++k) word += lower(s[k]);
  if (word == "inf" || word == "infinity" || word == "nan") {
    out = word == "nan" ? std::nan("") : HUGE_VAL;
    if (neg) out = -out;
    return true;
  }
  if (s.find('_') != std::string_view::npos) throw Refuse("number text with '_'");
  size_t d0 = i;
  while (i < n && is_digit(s[i])) ++i;
  size_t int_digits = i - d0, frac_digits = 0;
  if (i < n && s[i] == '.') {
    size_t f0 = ++i;
    while (i < n && is_digit(s[i])) ++i;
    frac_digits = i - f0;
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    size_t e0 = i;
    while (i < n && is_digit(s[i])) ++i;
    if (i == e0) return false;
  }
  if (i != n) return false;
  std::string text(s.substr(d0));  // (from_chars: no sign, and "5." / ".5" written out)
  if (int_digits == 0) text.insert(0, "0");
  size_t dot = text.find('.');
  if (dot != std::string::npos && (dot + 1 == text.size() || !is_digit(text[dot + 1]))) text.insert(dot + 1, "0");
  double v;
  auto res = std::from_chars(text.data(), text.data() + text.size(), v);
  if (res.ec != std::errc() || res.ptr != text.data() + text.size() || !std::isfinite(v))
    throw Refuse("number text out of range");
  out = neg ? -v : v;
  return true;
}

// Python truthiness of a JSON value
bool truthy(const element& v) {
  switch (v.type()) {
    case element_type::STRING: return !v.get_string().value_unsafe().empty();
    case element_type::INT64: return v.get_int64().value_unsafe() != 0;
    case element_type::UINT64: return true;
    case element_type::DOUBLE: return v.get_double().value_unsafe() != 0;
    case element_type::BOOL: return v.get_bool().value_unsafe();
    case element_type::NULL_VALUE: return false;
    case element_type::ARRAY: return v.get_array().value_unsafe().size() != 0;
    default: return v.get_object().value_unsafe().size() != 0;
  }
}

// compose._str: the string itself, else orjson.dumps(value) (ints, bools); false for None.
// Floats and nested values are printed as orjson prints them. ``out`` is a view of the value
// or of ``buf``.
// (the rarer kinds out of line, so the string case stays small enough to inline)
__attribute__((noinline)) bool py_str_other(const element& v, std::string& buf, std::string_view& out) {
  switch (v.type()) {
    case element_type::NULL_VALUE: return false;
    case element_type::INT64: buf = std::to_string(v.get_int64().value_unsafe()); break;
    case element_type::UINT64: buf = std::to_string(v.get_uint64().value_unsafe()); break;
    case element_type::BOOL: buf = v.get_bool().value_unsafe() ? "true" : "false"; break;
    default:
      buf.clear();
      json_text(v, buf);
  }
  out = buf;
  return true;
}

inline bool py_str(const element& v, std::string& buf, std::string_view& out) {
  if (v.type() == element_type::STRING) {
    out = v.get_string().value_unsafe();
    return true;
  }
  return py_str_other(v, buf, out);
}

// str(value).upper() for strings, ints, bools and floats (non-ASCII and containers refuse)
void py_upper_str(const element& v, std::string& out) {
  switch (v.type()) {
    case element_type::STRING: {
      std::string_view s = v.get_string().value_unsafe();
      if (!ascii(s)) throw Refuse("non-ASCII text Python would upper-case");
      out.assign(s);
      break;
    }
    case element_type::INT64: out = std::to_string(v.get_int64().value_unsafe()); break;
    case element_type::UINT64: out = std::to_string(v.get_uint64().value_unsafe()); break;
    case element_type::BOOL: out = v.get_bool().value_unsafe() ? "True" : "False"; break;
    case element_type::DOUBLE:  // repr(float) (fixed notation only)
      out.clear();
      python_float(v.get_double().value_unsafe(), out);
      break;
    default: throw Refuse("nested value Python would upper-case");
  }
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
}

// --- classification (compose._classify, ERROR_TEXT, LIFECYCLE) on ASCII text ----------------
// compose.ERROR_TEXT: any of tables::ERROR_PHRASES with a word boundary before it
bool error_text(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && word_char(s[i - 1])) continue;
    for (auto a : tables::ERROR_PHRASES)
      if (s[i] == a[0] && s.size() - i >= a.size() && std::memcmp(s.data() + i, a.data(), a.size()) == 0)
        return true;
  }
  return false;
}

// compose.LIFECYCLE: (?i)\b(phrase|...)\b over tables::LIFECYCLE_PHRASES (lower case)
bool lifecycle_text(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && word_char(s[i - 1])) continue;
    char c = lower(s[i]);
    for (auto a : tables::LIFECYCLE_PHRASES) {
      if (a[0] != c || s.size() - i < a.size()) continue;
      size_t j = 1;
      while (j < a.size() && lower(s[i + j]) == a[j]) ++j;
      if (j < a.size()) continue;
      size_t end = i + a.size();
      if (end == s.size() || !word_char(s[end])) return true;
    }
  }
  return false;
}

// --- plain-text payloads (compose._text_record, timeparse.search_time_ms) on ASCII text -----
// Each scan below is the regex's leftmost match with its backtracking written out; the caller
// has checked that the text is ASCII (Unicode \d, \w, \s and case folding stay with Python).
inline bool py_nonspace(char c) { return !py_space(static_cast<unsigned char>(c)); }
inline bool digits_at(std::string_view s, size_t i, size_t n) {
  if (i + n > s.size()) return false;
  for (size_t k = i; k < i + n; ++k)
    if (!is_digit(s[k])) return false;
  return true;
}

// valid UTF-8 whose non-ASCII characters are all in tables::INERT_TEXT_RANGES (to the regexes,
// punctuation like any ASCII byte >= 0x80 here: not \w, \d or \s, no case folding)
bool inert_text(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* e = p + s.size();
  while (p < e) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    int n = *p > 0xF4 ? -1 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC0 ? 1 : -1;
    if (n < 0 || e - p <= n) return false;
    uint32_t c = *p & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
      if ((p[k] & 0xC0) != 0x80) return false;
      c = (c << 6) | (p[k] & 0x3F);
    }
    bool ok = false;  // (overlong forms and surrogates fall outside every range)
    for (const auto& r : tables::INERT_TEXT_RANGES) ok |= c >= r[0] && c <= r[1];
    if (!ok || (n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000)) return false;
    p += n + 1;
  }
  return true;
}

// the bytes of the first ``n`` characters of UTF-8 text (Python's text[:n])
std::string_view char_prefix(std::string_view s, size_t n) {
  size_t i = 0;
  for (size_t chars = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // (a continuation byte)
    if (chars++ == n) break;
  }
  return s.substr(0, i);
}

// compose.TS_PREFIX.match: its length, 0 for no match
size_t ts_prefix(std::string_view s) {
  if (s.size() < 20 || !digits_at(s, 0, 4) || s[4] != '-' || !digits_at(s, 5, 2) || s[7] != '-' ||
      !digits_at(s, 8, 2) || s[10] != 'T' || !digits_at(s, 11, 2) || s[13] != ':' || !digits_at(s, 14, 2) ||
      s[16] != ':' || !digits_at(s, 17, 2))
    return 0;
  size_t i = 19;
  if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1]))
    for (++i; i < s.size() && is_digit(s[i]);) ++i;
  if (i < s.size() && s[i] == 'Z') {
    ++i;
  } else if (i + 6 <= s.size() && (s[i] == '+' || s[i] == '-') && digits_at(s, i + 1, 2) && s[i + 3] == ':' &&
             digits_at(s, i + 4, 2)) {
    i += 6;
  } else {
    return 0;
  }
  if (i < s.size() && s[i] == ' ') ++i;
  return i;
}

// timeparse._ISO (its fixed part) at s[i]
bool iso_at(std::string_view s, size_t i) {
  return digits_at(s, i, 4) && (s[i + 4] == '-' || s[i + 4] == '/') && digits_at(s, i + 5, 2) &&
         (s[i + 7] == '-' || s[i + 7] == '/') && digits_at(s, i + 8, 2) && (s[i + 10] == 'T' || s[i + 10] == ' ') &&
         digits_at(s, i + 11, 2) && s[i + 13] == ':' && digits_at(s, i + 14, 2) && s[i + 16] == ':' &&
         digits_at(s, i + 17, 2);
}

inline bool clf_word(char c) { return word_char(c); }
// timeparse._CLF (its fixed part) at s[i]: dd[/ ]Mon[/ ]yyyy[: ]hh:mm:ss
bool clf_at(std::string_view s, size_t i) {
  return i + 20 <= s.size() && digits_at(s, i, 2) && (s[i + 2] == '/' || s[i + 2] == ' ') && clf_word(s[i + 3]) &&
         clf_word(s[i + 4]) && clf_word(s[i + 5]) && (s[i + 6] == '/' || s[i + 6] == ' ') && digits_at(s, i + 7, 4) &&
         (s[i + 11] == ':' || s[i + 11] == ' ') && digits_at(s, i + 12, 2) && s[i + 14] == ':' &&
         digits_at(s, i + 15, 2) && s[i + 17] == ':' && digits_at(s, i + 18, 2);
}

// _MONTHS.get(mon[:3].title()): 1..12, 0 for None
int clf_month(std::string_view mon) {
  static constexpr std::string_view NAMES[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                               "jul", "aug", "sep", "oct", "nov", "dec"};
  for (int m = 0; m < 12; ++m) {
    bool eq = true;
    for (int k = 0; k < 3; ++k) {
      char c = mon[k];
      bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      eq &= letter && lower(c) == NAMES[m][k];
    }
    if (eq) return m + 1;
  }
  return 0;
}

// the _CLF match at s[i] -> ms; out-of-range dates refuse (Python gives None there)
int64_t clf_ms(std::string_view s, size_t i) {
  int d = two(s.data() + i), y = two(s.data() + i + 7) * 100 + two(s.data() + i + 9);
  int h = two(s.data() + i + 12), mi = two(s.data() + i + 15), sec = two(s.data() + i + 18);
  int mo = clf_month(s.substr(i + 3, 3));
  size_t k = i + 20;
  int frac = 0;  // (?:\.(\d+))?
  if (k + 1 < s.size() && s[k] == '.' && is_digit(s[k + 1])) {
    int n = 0;
    for (++k; k < s.size() && is_digit(s[k]); ++k, ++n)
      if (n < 3) frac = frac * 10 + (s[k] - '0');
    for (; n < 3; ++n) frac *= 10;
  }
  int offset_min = 0;  // (?: ([+-]\d{4}))?
  if (k + 6 <= s.size() && s[k] == ' ' && (s[k + 1] == '+' || s[k + 1] == '-') && digits_at(s, k + 2, 4)) {
    int total = two(s.data() + k + 2) * 60 + two(s.data() + k + 4);
    if (total >= 24 * 60) throw Refuse("time zone offset out of range");
    offset_min = s[k + 1] == '-' ? -total : total;
  }
  if (y < 1 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59) throw Refuse("time out of range");
  int64_t minute_s = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 +
                     mi * 60 - offset_min * 60;
  return minute_s * 1000 + sec * 1000 + frac;
}

// timeparse.search_time_ms(text) on its first 64 characters ``head``: false for None
bool search_time(std::string_view head, int64_t& out) {
  for (size_t i = 0; i + 19 <= head.size(); ++i)
    if (iso_at(head, i)) {  // (the match ends before any non-ASCII character: iso_ms reads ASCII)
      size_t j = i;
      while (j < head.size() && static_cast<unsigned char>(head[j]) < 0x80) ++j;
      out = iso_ms(head.substr(i, j - i));
      return true;
    }
  for (size_t i = 0; i + 20 <= head.size(); ++i)
    if (clf_at(head, i)) {
      if (clf_month(head.substr(i + 3, 3)) == 0) return false;
      out = clf_ms(head, i);
      return true;
    }
  return false;
}

// compose.TEXT_LEVEL.search(h), h = text[:120] -> the level written ("" for None)
std::string_view text_level(std::string_view h) {
  for (size_t i = 0; i < h.size(); ++i) {
    if (i > 0 && word_char(h[i - 1])) continue;
    for (std::string_view w : tables::TEXT_LEVELS) {
      if (h.size() - i < w.size()) continue;
      size_t j = 0;
      while (j < w.size() && lower(h[i + j]) == lower(w[j])) ++j;
      size_t end = i + w.size();
      if (j == w.size() && (end == h.size() || !word_char(h[end]))) return w == "WARNING" ? "WARN" : w;
    }
  }
  return {};
}

struct Access {  // compose.ACCESS and, when it matches, compose.COMBINED
  std::string_view method, path, client_ip, user_name, http_version, user_agent;
  int status = 0;
  bool has_user = false, has_version = false, has_agent = false, combined = false;
};

// `" \d{3}\b` at s[m]
bool status_at(std::string_view s, size_t m, int& status) {
  if (m + 5 > s.size() || s[m] != '"' || s[m + 1] != ' ' || !digits_at(s, m + 2, 3)) return false;
  if (m + 5 < s.size() && word_char(s[m + 5])) return false;
  status = (s[m + 2] - '0') * 100 + (s[m + 3] - '0') * 10 + (s[m + 4] - '0');
  return true;
}

// ACCESS: "(METHOD) (\S+)[^"]*" (\d{3})\b, leftmost; \S+ gives back characters from its end
// until the first quote after it starts `" ddd\b`
bool access_search(std::string_view s, Access& a) {
  for (size_t i = s.find('"'); i != std::string_view::npos; i = s.find('"', i + 1)) {
    for (std::string_view m : tables::HTTP_METHODS) {
      size_t st = i + 1 + m.size() + 1;
      if (st > s.size() || s.compare(i + 1, m.size(), m) != 0 || s[i + 1 + m.size()] != ' ') continue;
      size_t r = st;
      while (r < s.size() && py_nonspace(s[r])) ++r;
      if (r == st) continue;
      size_t q = s.find('"', r);  // the first quote at or after k, for k = r, r-1, ..., st+1
      for (size_t k = r; k > st; --k) {
        if (k < r && s[k] == '"') q = k;
        if (q != std::string_view::npos && status_at(s, q, a.status)) {
          a.method = m;
          a.path = s.substr(st, k - st);
          return true;
        }
      }
    }
  }
  return false;
}

// run of \S from i: its end (i when empty)
inline size_t run_end(std::string_view s, size_t i) {
  while (i < s.size() && py_nonspace(s[i])) ++i;
  return i;
}

// COMBINED after the request's closing quote at s[x]: " \d{3} \S+ "[^"]*" "([^"]*)""
bool combined_tail(std::string_view s, size_t x, Access& a) {
  if (x + 5 > s.size() || s[x] != ' ' || !digits_at(s, x + 1, 3) || s[x + 4] != ' ') return false;
  size_t y = run_end(s, x + 5);
  if (y == x + 5 || y + 2 > s.size() || s[y] != ' ' || s[y + 1] != '"') return false;
  size_t z = s.find('"', y + 2);
  if (z == std::string_view::npos || z + 2 >= s.size() || s[z + 1] != ' ' || s[z + 2] != '"') return false;
  size_t w = s.find('"', z + 3);
  if (w == std::string_view::npos) return false;
  std::string_view agent = s.substr(z + 3, w - z - 3);
  a.has_agent = agent != "-";
  a.user_agent = agent;
  return true;
}

// COMBINED.match: ^(\S+) \S+ (\S+) \[[^\]]*\] "[A-Z]+ \S+(?: HTTP/([0-9.]+))?" <combined_tail>
bool combined_match(std::string_view s, Access& a) {
  size_t e1 = run_end(s, 0);
  if (e1 == 0 || e1 >= s.size() || s[e1] != ' ') return false;
  size_t e2 = run_end(s, e1 + 1);
  if (e2 == e1 + 1 || e2 >= s.size() || s[e2] != ' ') return false;
  size_t e3 = run_end(s, e2 + 1);
  if (e3 == e2 + 1 || e3 + 1 >= s.size() || s[e3] != ' ' || s[e3 + 1] != '[') return false;
  size_t rb = s.find(']', e3 + 2);
  if (rb == std::string_view::npos || rb + 2 >= s.size() || s[rb + 1] != ' ' || s[rb + 2] != '"') return false;
  size_t u = rb + 3;
  while (u < s.size() && s[u] >= 'A' && s[u] <= 'Z') ++u;
  if (u == rb + 3 || u >= s.size() || s[u] != ' ') return false;
  size_t r0 = u + 1, r1 = run_end(s, r0);
  if (r1 == r0) return false;
  bool found = false;
  constexpr std::string_view HTTP = " HTTP/";
  if (s.compare(r1, HTTP.size(), HTTP) == 0) {  // \S+ whole, then the version group
    size_t v0 = r1 + HTTP.size(), v1 = v0;
    while (v1 < s.size() && (is_digit(s[v1]) || s[v1] == '.')) ++v1;
    if (v1 > v0 && v1 < s.size() && s[v1] == '"' && combined_tail(s, v1 + 1, a)) {
      a.http_version = s.substr(v0, v1 - v0);
      a.has_version = found = true;
    }
  }
  for (size_t k = r1 - 1; !found && k > r0; --k)  // \S+ shorter, no version: a quote inside it
    if (s[k] == '"' && combined_tail(s, k + 1, a)) found = true;
  if (!found) return false;
  a.client_ip = s.substr(0, e1);
  a.user_name = s.substr(e2 + 1, e3 - e2 - 1);
  a.has_user = a.user_name != "-";
  a.combined = true;
  return true;
}

// --- the columns ----------------------------------------------------------------------------
struct LogColumns {
  I64Col time_ms{"i64"}, http_status{"i64"}, line_no{"i64"};
  I64Col inferred_rows{"i64"};  // rows whose time is the line before's (not a FLAT_LOG column)
  F64Col duration_ms{"f64"};
  StrCol service, container, level, message, logger, event, host, region, trace_id, span_id, http_method, http_path,
      error_type, client_ip, user_agent, http_version, user_name, payload;
  MapCol extra;

  void clear() {
    for (I64Col* col : {&time_ms, &http_status, &line_no, &inferred_rows}) col->clear();
    duration_ms.clear();
    for (StrCol* col : strs()) col->clear();
    extra.clear();
  }
  void truncate(size_t n) {
    for (I64Col* col : {&time_ms, &http_status, &line_no}) col->truncate(n);
    duration_ms.truncate(n);
    for (StrCol* col : strs()) col->truncate(n);
    extra.truncate(n);  // (also the entries of a map row not closed yet)
  }
  size_t capacity_bytes() const {
    size_t n = 0;
    for (const StrCol* col : const_cast<LogColumns*>(this)->strs()) n += col->capacity_bytes();
    return n + extra.capacity_bytes();
  }
  std::array<StrCol*, 18> strs() {
    return {&service, &container, &level, &message, &logger, &event, &host, &region, &trace_id, &span_id,
            &http_method, &http_path, &error_type, &client_ip, &user_agent, &http_version, &user_name, &payload};
  }

  bool to_dict(PyObject* d) const {
    return put(d, "time_ms", time_ms) && put(d, "service", service) && put(d, "container", container) &&
           put(d, "level", level) && put(d, "message", message) && put(d, "logger", logger) &&
           put(d, "event", event) && put(d, "host", host) && put(d, "region", region) &&
           put(d, "trace_id", trace_id) && put(d, "span_id", span_id) && put(d, "http_method", http_method) &&
           put(d, "http_path", http_path) && put(d, "http_status", http_status) &&
           put(d, "duration_ms", duration_ms) && put(d, "error_type", error_type) && put(d, "client_ip", client_ip) &&
           put(d, "user_agent", user_agent) && put(d, "http_version", http_version) &&
           put(d, "user_name", user_name) && put(d, "extra", extra) && put(d, "payload", payload) &&
           put(d, "line_no", line_no) && put(d, "inferred_rows", inferred_rows);
  }
};

// the reason of a line the compiled reader rejects itself, as the reference does (after
// "reject:"; compose._Reader.merge counts it and keeps its text as an example)
constexpr const char* REJECT_NO_PREFIX = "reject:no '<service> |' prefix";
// a non-ASCII line whose first character cannot start PREFIX: the Python reader skips it
// (Unicode blanks) or rejects it, a row it never makes (so the time state stays)
constexpr const char* NO_ROW_UNPREFIXED = "unprefixed non-ASCII line";

class ComposeBlock {
 public:
  bool busy = false;  // between run() and the end of finish()

  // every line of ``data`` (LF or CRLF ends; blank lines skipped but counted)
  // ``infer``: untimed plain-text lines take the time of the timed row before them when this
  // block read it, or ``start_t`` (the Python reader's last time, when ``has_start_t``) before
  // any (the caller takes ``inferred_rows``); else they are refused
  void run(const char* data, size_t len, int64_t first_line_no, bool infer, bool has_start_t = false,
           int64_t start_t = 0) {
    if (!allocated_) {  // max depth 64 (orjson nests to 1024): deeper JSON is refused
      if (parser_.allocate(1 << 16, 64)) throw std::bad_alloc();
      allocated_ = true;
    }
    c_.clear();
    refused_.clear();
    have_time_ = has_start_t;
    last_t_ = start_t;
    infer_ = infer;
    reserve(data, len);
    const char* end = data + len;
    const char* p = data;
    int64_t line_no = first_line_no;
    const bool has_esc = std::memchr(data, 0x1b, len) != nullptr;  // (per line only if any)
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      const char* stop = nl ? nl : end;
      const char* e = stop;
      if (e > p && e[-1] == '\r') --e;  // textio strips one CR
      const char* why;
      size_t rows = c_.line_no.size();
      try {
        if (has_esc && std::memchr(p, 0x1b, static_cast<size_t>(e - p)) != nullptr) {
          strip_ansi(p, e);
          why = line(ansi_.data(), ansi_.data() + ansi_.size(), line_no, ansi_.data() + ansi_.size());
        } else {
          why = line(p, e, line_no, end);
        }
      } catch (const Refuse& r) {
        c_.truncate(rows);  // (a row given up half way)
        why = nullptr;
        refused_.emplace_back(line_no - first_line_no, r.what());
        have_time_ = false;
      }
      if (why != nullptr) {
        refused_.emplace_back(line_no - first_line_no, why);
        // (the Python reader may find a time in a refused line: later untimed lines wait for it)
        if (why != REJECT_NO_PREFIX && why != NO_ROW_UNPREFIXED) have_time_ = false;
      }
      ++line_no;
      p = nl ? nl + 1 : end;
    }
  }

  bool finish(PyObject* d) const { return c_.to_dict(d); }

  // the refused lines as (line index in the block, reason) appended to a Python list
  bool put_refused(PyObject* list) const {
    for (const auto& [index, why] : refused_) {
      PyObject* item = Py_BuildValue("(Ls)", static_cast<long long>(index), why.c_str());
      if (item == nullptr || PyList_Append(list, item) < 0) {
        Py_XDECREF(item);
        return false;
      }
      Py_DECREF(item);
    }
    return true;
  }
  const std::vector<std::pair<int64_t, std::string>>& refused() const { return refused_; }

  // the columns' memory stays for the next block (fresh pages cost more than parsing), up to
  // a bound: after a huge block it goes back
  void release_if_large() {
    if (c_.capacity_bytes() > (size_t{96} << 20)) c_ = LogColumns();
  }

  // one allocation per column for the usual block: payloads take most of the block's bytes
  void reserve(const char* data, size_t len) {
    // lines in the block, estimated from its first 64 KiB (an exact count is a second pass over
    // every line; the columns grow anyway if the estimate is short)
    size_t head = std::min(len, size_t{1} << 16), n = 1;
    for (const char* p = data; (p = static_cast<const char*>(std::memchr(p, '\n', data + head - p))) != nullptr; ++p) ++n;
    if (head < len) n = n * (len / head + 1) + 16;
    for (I64Col* col : {&c_.time_ms, &c_.http_status, &c_.line_no}) col->reserve(n);
    c_.duration_ms.reserve(n);
    c_.payload.reserve(n, len);
    c_.container.reserve(n, n * 16);
    c_.service.reserve(n, n * 16);
    c_.message.reserve(n, n * 24);
    for (StrCol* col : {&c_.level, &c_.event, &c_.http_method}) col->reserve(n, n * 6);
    for (StrCol* col : {&c_.trace_id, &c_.span_id, &c_.http_path})
      col->reserve(n, col == &c_.trace_id ? n * 32 : n * 16);
    for (StrCol* col : {&c_.logger, &c_.host, &c_.region, &c_.error_type, &c_.client_ip, &c_.user_agent,
                        &c_.http_version, &c_.user_name})
      col->reserve(n, 0);
  }

 private:
  // compose.ANSI.sub("", line): one left-to-right pass, as re.sub does
  void strip_ansi(const char* p, const char* e) {
    ansi_.clear();
    while (p < e) {
      if (*p == 0x1b && p + 1 < e && p[1] == '[') {
        const char* q = p + 2;
        while (q < e && (is_digit(*q) || *q == ';' || *q == '?')) ++q;
        if (q < e && ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))) {
          p = q + 1;
          continue;
        }
      }
      ansi_ += *p++;
    }
  }

  // one line [p, e) (line end removed); ``readable`` is how far memory may be read (padding).
  // nullptr when its row is added, else why the Python reader must read it (the usual reasons
  // are returned, the rare ones thrown as Refuse)
  const char* line(const char* p, const char* e, int64_t line_no, const char* readable) {
    const char* s = p;
    while (s < e && py_space(static_cast<unsigned char>(*s))) ++s;
    if (s == e) return nullptr;  // blank: skipped, still counted
    // PREFIX: ([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*\|(?: (.*)|)$
    const char* q = p;
    if (q == e || !(word_char(*q) && *q != '_')) return no_prefix(p, e);
    while (q < e && name_char(*q)) ++q;
    std::string_view container(p, static_cast<size_t>(q - p));
    while (q < e && py_space(static_cast<unsigned char>(*q))) ++q;
    if (q == e || *q != '|') return no_prefix(p, e);
    ++q;
    if (q < e && *q != ' ') return no_prefix(p, e);
    if (q < e) ++q;
    std::string_view payload(q, static_cast<size_t>(e - q));
    // --timestamps: an RFC 3339 time first
    int64_t t = 0;
    bool has_t = false;
    if (size_t n = payload.size() >= 2 && is_digit(payload[0]) && is_digit(payload[1]) ? ts_prefix(payload) : 0) {
      t = iso_ms(payload.substr(0, n));
      has_t = true;
      payload.remove_prefix(n);
      q += n;
    }
    // payload.lstrip() must start a JSON object; orjson allows JSON whitespace after it
    const char* j = q;
    while (j < e && py_space(static_cast<unsigned char>(*j))) ++j;
    if (j == e || *j != '{') return text_row(container, payload, line_no, has_t, t);
    const char* je = e;
    while (je > j && (je[-1] == ' ' || je[-1] == '\t' || je[-1] == '\r')) --je;
    size_t jlen = static_cast<size_t>(je - j);
    bool padded = static_cast<size_t>(readable - je) >= simdjson::SIMDJSON_PADDING;
    element root;
    if (auto err = parser_.parse(j, jlen, !padded).get(root)) {
      // broken structure (a cut line, a shell's { ok: 1 }): orjson fails too, and the reference
      // reads the payload as text; other errors (numbers, escapes, UTF-8, depth) stay with it
      if (!structure_error(err)) return "payload is not valid JSON";
      return text_row(container, payload, line_no, has_t, t);
    }
    simdjson::dom::object obj;
    if (root.get_object().get(obj)) return "payload is not a JSON object";
    record(obj, line_no, container, payload, has_t, t);
    return nullptr;
  }

  static bool structure_error(simdjson::error_code err) {
    using namespace simdjson;
    return err == TAPE_ERROR || err == T_ATOM_ERROR || err == F_ATOM_ERROR || err == N_ATOM_ERROR ||
           err == UNCLOSED_STRING;
  }

  // a line PREFIX does not match: the reference's rejection (compose._Reader.merge records it)
  // when the line is ASCII; otherwise Unicode blanks could make it a blank line there
  __attribute__((noinline)) static const char* no_prefix(const char* p, const char* e) {
    if (ascii(std::string_view(p, static_cast<size_t>(e - p)))) return REJECT_NO_PREFIX;
    return word_char(*p) && *p != '_' ? "unprefixed line" : NO_ROW_UNPREFIXED;  // (\s* is Unicode there)
  }

  // compose._text_record + _classify for an ASCII plain-text payload with a time
  // (out of line: the JSON lines' path stays as small as it was)
  __attribute__((noinline)) const char* text_row(std::string_view container, std::string_view payload, int64_t line_no, bool has_t, int64_t t) {
    bool plain = ascii(payload);
    if (!plain && !inert_text(payload)) return "non-ASCII plain-text payload";
    auto head = [&](size_t n) { return plain ? payload.substr(0, n) : char_prefix(payload, n); };
    bool inferred = !has_t && !search_time(head(64), t);
    if (inferred) {  // compose._Reader._row: the last time seen
      if (!have_time_ || !infer_) return "plain-text line without a time";
      t = last_t_;
    }
    std::string_view level = text_level(head(120));
    Access a;
    bool access = access_search(payload, a);
    if (access) combined_match(payload, a);
    c_.time_ms.add(t);
    add_service(container);
    add_opt(c_.level, level, !level.empty());
    c_.message.add(payload);
    for (StrCol* col : {&c_.logger, &c_.host, &c_.region, &c_.trace_id, &c_.span_id}) col->null();
    add_opt(c_.http_method, a.method, access);
    std::string_view path = a.path.substr(0, a.path.find('?'));
    add_opt(c_.http_path, path, access);
    if (access) c_.http_status.add(a.status);
    else c_.http_status.null();
    c_.duration_ms.null();
    c_.error_type.null();
    add_opt(c_.client_ip, a.client_ip, a.combined);
    add_opt(c_.user_agent, a.user_agent, a.combined && a.has_agent);
    add_opt(c_.http_version, a.http_version, a.combined && a.has_version);
    add_opt(c_.user_name, a.user_name, a.combined && a.has_user);
    c_.extra.null();
    c_.payload.add(payload);
    c_.line_no.add(line_no);
    classify(access ? std::string_view("access") : std::string_view(), false, !level.empty(), level, true,
             payload);
    if (inferred) {
      c_.inferred_rows.add(static_cast<int64_t>(c_.line_no.size() - 1));
    } else {
      last_t_ = t;
      have_time_ = true;
    }
    return nullptr;
  }

  static void add_opt(StrCol& col, std::string_view v, bool present) {
    if (present) col.add(v);
    else col.null();
  }

  // the service column: the container with REPLICA ([-_][1-9]\d*$) removed
  __attribute__((always_inline)) std::string_view add_service(std::string_view container) {
    std::string_view service = container;
    size_t i = container.size();
    while (i > 0 && is_digit(container[i - 1])) --i;
    if (i < container.size() && i >= 1 && container[i] != '0' && (container[i - 1] == '-' || container[i - 1] == '_'))
      service = container.substr(0, i - 1);
    c_.service.add(service);
    c_.container.add(container);
    return service;
  }

  // compose._classify of the row just added
  __attribute__((always_inline)) void classify(std::string_view event, bool method_and_status, bool has_level, std::string_view level, bool has_msg,
                std::string_view msg) {
    if (!event.empty()) {
      c_.event.add(event);
    } else if (method_and_status) {
      c_.event.add("access");
    } else if (has_level && is_error_level(level)) {
      c_.event.add("error");
    } else {
      std::string_view head = has_msg ? msg.substr(0, 200) : std::string_view();
      if (!ascii(head)) c_.event.null();  // Unicode \b / case folding: compose._classify decides
      else if (!has_level && error_text(head)) c_.event.add("error");
      else if (lifecycle_text(head)) c_.event.add("lifecycle");
      else c_.event.add("other");
    }
  }

  const element* first(KeyGroup g) const {
    for (int k = g.first; k < g.first + g.n; ++k) {
      if (!present_[k]) continue;
      const element& v = slot_[k];
      element_type t = v.type();
      if (t == element_type::NULL_VALUE) continue;
      if (t == element_type::STRING && v.get_string().value_unsafe().empty()) continue;
      return &v;
    }
    return nullptr;
  }

  void add_str(StrCol& col, const element* v) {
    std::string_view text;
    if (v != nullptr && py_str(*v, tmp_, text)) col.add(text);
    else col.null();
  }

  // compose._json_record + _classify for one object
  // (``has_prefix_t``, ``prefix_t``: a ``--timestamps`` time, used when the object has no time key)
  void record(simdjson::dom::object obj, int64_t line_no, std::string_view container, std::string_view payload,
              bool has_prefix_t, int64_t prefix_t) {
    present_.fill(false);
    extras_.clear();
    for (auto field : obj) {
      int k = KEY_INDEX.find(field.key);
      if (k >= 0) {
        slot_[k] = field.value;  // duplicate keys: the last value wins, as in a dict
        present_[k] = true;
      }
      if (k < 0 || keep_whole(field.key)) {  // tables::LOG_KEEP_KEYS: read in part, kept whole
        bool dup = false;
        for (auto& e : extras_)
          if (e.first == field.key) {
            e.second = field.value;  // a dict: first place, last value
            dup = true;
          }
        if (!dup) extras_.emplace_back(field.key, field.value);
      }
    }
    load_http();
    const element* tv = first(TIME);
    if (tv == nullptr && !has_prefix_t) throw Refuse("JSON log without a usable time");
    int64_t t = tv != nullptr ? time_ms(*tv) : prefix_t;  // (a time the object has wins)

    // level: _level(_first(LEVEL_KEYS))
    bool has_level = false;
    if (const element* lv = first(LEVEL)) {
      py_upper_str(*lv, level_);
      has_level = true;
      std::string_view txt = level_;  // tables::SHORT_LEVEL_FROM -> _TO
      if (!txt.empty() && txt[0] == 'D' && txt.size() <= 2) {
        level_ = "DEBUG";
      } else {
        for (size_t i = 0; i < std::size(tables::SHORT_LEVEL_FROM); ++i)
          if (txt == tables::SHORT_LEVEL_FROM[i]) {
            level_ = std::string(tables::SHORT_LEVEL_TO[i]);
            break;
          }
      }
    }
    // http: `_first(...) or http.get(...)` (http: the "http" object, else {})
    bool has_method = false;
    const element* mv = or_http(first(METHOD), 0);
    if (mv != nullptr && truthy(*mv)) {  // str(method).upper() if method else None
      py_upper_str(*mv, method_);
      has_method = true;
    }
    const element* pv = or_http(first(PATH), 1);
    int64_t status = 0;
    const element* sv = or_http(first(STATUS), 2);
    bool has_status = sv != nullptr && py_int(*sv, status);
    bool has_duration = false;
    double duration = 0;
    if (const element* dv = first(DURATION)) {
      switch (dv->type()) {  // _float(): float(value), None on TypeError / ValueError
        case element_type::STRING: has_duration = float_text(dv->get_string().value_unsafe(), duration); break;
        case element_type::INT64: duration = static_cast<double>(dv->get_int64().value_unsafe()); has_duration = true; break;
        case element_type::UINT64: duration = static_cast<double>(dv->get_uint64().value_unsafe()); has_duration = true; break;
        case element_type::DOUBLE: duration = dv->get_double().value_unsafe(); has_duration = true; break;
        case element_type::BOOL: duration = dv->get_bool().value_unsafe() ? 1.0 : 0.0; has_duration = true; break;
        default: break;
      }
    }
    // event: obj.get("event") if it is one of EVENTS
    std::string_view event;
    if (present_[EVENT] && slot_[EVENT].type() == element_type::STRING) {
      std::string_view ev = slot_[EVENT].get_string().value_unsafe();
      for (auto known : tables::LOG_EVENTS)
        if (ev == known) event = ev;
    }
    // error_type: _first(...), else error.get("type") when error is an object
    const element* etv = first(ERROR_TYPE);
    bool err_from_obj = false;
    element err_type;
    if (etv == nullptr && present_[ERROR] && slot_[ERROR].type() == element_type::OBJECT) {
      simdjson::dom::object eo = slot_[ERROR].get_object().value_unsafe();
      for (auto f : eo)
        if (f.key == "type") {
          err_type = f.value;
          err_from_obj = true;
        }
      if (err_from_obj) etv = &err_type;
    }
    const element* msg = first(MESSAGE);

    // append the row (a refusal below: run() truncates the columns back, no half row escapes)
    c_.time_ms.add(t);
    std::string_view service = add_service(container);
    if (has_level) c_.level.add(level_);
    else c_.level.null();
    std::string_view msg_text;
    bool has_msg = msg != nullptr && py_str(*msg, msg_, msg_text);
    if (has_msg) c_.message.add(msg_text);
    else c_.message.null();
    add_str(c_.logger, first(LOGGER));
    add_str(c_.host, first(HOST));
    add_str(c_.region, present_[REGION] ? &slot_[REGION] : nullptr);
    add_str(c_.trace_id, first(TRACE));
    add_str(c_.span_id, first(SPAN));
    if (has_method) c_.http_method.add(method_);
    else c_.http_method.null();
    add_str(c_.http_path, pv);
    if (has_status) c_.http_status.add(status);
    else c_.http_status.null();
    if (has_duration) c_.duration_ms.add(duration);
    else c_.duration_ms.null();
    add_str(c_.error_type, etv);
    add_str(c_.client_ip, first(CLIENT_IP));
    add_str(c_.user_agent, first(USER_AGENT));
    add_str(c_.http_version, first(HTTP_VERSION));
    c_.user_name.null();  // (only plain-text access lines name a user: Python reads those)
    size_t n_extra = 0;
    for (auto& [key, value] : extras_) {
      if (value.type() == element_type::STRING && value.get_string().value_unsafe() == service &&
          same_as_service(key))
        continue;  // tables::LOG_SAME_AS_SERVICE: the line's own service says nothing new
      ++n_extra;
      c_.extra.keys.add(key);
      switch (value.type()) {  // compose._str
        case element_type::NULL_VALUE: c_.extra.values.null(); break;
        case element_type::STRING: c_.extra.values.add(value.get_string().value_unsafe()); break;
        default:
          json_text(value, c_.extra.values.buf());
          c_.extra.values.close();
      }
    }
    if (n_extra) c_.extra.close();
    else c_.extra.null();
    c_.payload.add(payload);
    c_.line_no.add(line_no);

    classify(event, has_method && has_status, has_level, level_, has_msg, msg_text);
    last_t_ = t;
    have_time_ = true;
  }

  // the "http" object's method / path / status (a dict: the last repeated key wins)
  void load_http() {
    http_has_ = {false, false, false};
    if (!present_[HTTP] || slot_[HTTP].type() != element_type::OBJECT) return;
    static constexpr std::string_view NAMES[3] = {"method", "path", "status"};
    simdjson::dom::object http = slot_[HTTP].get_object().value_unsafe();  // (a named copy)
    for (auto f : http)
      for (int i = 0; i < 3; ++i)
        if (f.key == NAMES[i]) {
          http_[i] = f.value;
          http_has_[i] = true;
        }
  }
  // ``value or http.get(name)``: nullptr for None
  const element* or_http(const element* v, int i) const {
    if (v != nullptr && truthy(*v)) return v;
    if (!http_has_[i] || http_[i].type() == element_type::NULL_VALUE) return nullptr;
    return &http_[i];
  }
  // compose._int(value): int(value) within int32, else false (None)
  static bool py_int(const element& v, int64_t& out) {
    switch (v.type()) {
      case element_type::STRING:
        if (!int_text(v.get_string().value_unsafe(), out)) return false;
        break;
      case element_type::INT64: out = v.get_int64().value_unsafe(); break;
      case element_type::BOOL: out = v.get_bool().value_unsafe() ? 1 : 0; break;
      case element_type::DOUBLE: {
        double d = v.get_double().value_unsafe();  // int() truncates
        if (!(d > -2147483649.0 && d < 2147483648.0)) return false;
        out = static_cast<int64_t>(d);
        break;
      }
      default: return false;  // huge ints: out of range; lists and objects: int() raises TypeError
    }
    return out >= INT32_MIN && out <= INT32_MAX;
  }

  std::array<element, 3> http_;
  std::array<bool, 3> http_has_{};
  simdjson::dom::parser parser_;
  bool allocated_ = false;
  LogColumns c_;
  static bool same_as_service(std::string_view key) {
    for (auto k : tables::LOG_SAME_AS_SERVICE)
      if (key == k) return true;
    return false;
  }

  static bool keep_whole(std::string_view key) {
    for (auto k : tables::LOG_KEEP_KEYS)
      if (key == k) return true;
    return false;
  }

  static bool is_error_level(std::string_view lv) {
    for (auto e : tables::ERROR_LEVELS)
      if (lv == e) return true;
    return false;
  }

  std::vector<std::pair<int64_t, std::string>> refused_;
  std::array<element, N_KEYS> slot_;
  std::vector<std::pair<std::string_view, element>> extras_;
  std::array<bool, N_KEYS> present_{};
  int64_t last_t_ = 0;  // the time of the last timed row, while no line since went to Python
  bool have_time_ = false, infer_ = false;
  std::string ansi_, tmp_, level_, method_, msg_;
};

}  // namespace

// parse_compose_block(data: bytes, first_line_no: int, refused: list | None, last_time: int | None)
// -> {column: buffers} for the lines it takes. ``data`` is whole lines (textio.Block.data: UTF-8,
// BOM removed). The lines it leaves to the Python reader are appended to ``refused`` as (index in
// the block, reason); without that list, any such line refuses the whole block (ValueError(reason)).
// ``last_time``: the time untimed lines before the block's first timed row take (the reader's).
PyObject* parse_compose_block(PyObject*, PyObject* args) {
  const char* buf;
  Py_ssize_t len;
  long long first_line_no;
  PyObject* refused = Py_None;
  PyObject* last_time = Py_None;
  if (!PyArg_ParseTuple(args, "y#L|OO", &buf, &len, &first_line_no, &refused, &last_time)) return nullptr;
  long long start_t = 0;
  if (last_time != Py_None) {
    start_t = PyLong_AsLongLong(last_time);
    if (start_t == -1 && PyErr_Occurred()) return nullptr;
  }
  if (refused != Py_None && !PyList_Check(refused)) {
    PyErr_SetString(PyExc_TypeError, "refused must be a list or None");
    return nullptr;
  }
  // one per thread, reused: its parser and column buffers keep their memory between blocks
  // (held by pointer: one thread-local lookup per call, not one per member access)
  static thread_local std::unique_ptr<ComposeBlock> owner;
  return python_errors([&]() -> PyObject* {
    if (!owner) owner = std::make_unique<ComposeBlock>();
    // a re-entrant call (Python code run by an allocation, e.g. a finalizer) gets its own
    std::unique_ptr<ComposeBlock> spare = owner->busy ? std::make_unique<ComposeBlock>() : nullptr;
    ComposeBlock& block = spare ? *spare : *owner;
    struct Busy {
      ComposeBlock& b;
      explicit Busy(ComposeBlock& block) : b(block) { b.busy = true; }
      ~Busy() {  // (also on a refusal)
        b.busy = false;
        b.release_if_large();
      }
    } busy(block);
    // (UTF-8 is checked per line: simdjson validates each payload, the prefix is ASCII)
    block.run(buf, static_cast<size_t>(len), first_line_no, refused != Py_None, last_time != Py_None, start_t);
    if (refused == Py_None) {
      if (!block.refused().empty()) throw Refuse(block.refused().front().second);
    } else if (!block.put_refused(refused)) {
      return nullptr;
    }
    return columns_dict(block);
  });
}

}  // namespace obslab
