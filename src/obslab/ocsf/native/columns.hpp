// Column builders shared by the native block parsers: Arrow-layout buffers (bit-packed
// validity, int32 offsets + UTF-8 data, fixed-width values) handed to Python as bytes and
// wrapped zero-copy by obslab.ocsf.native.to_arrays.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <simdjson.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace obslab {

// A parser refuses a block: the Python fast/slow path must read it (never a data loss).
struct Refuse : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Validity {
 public:
  void push(bool valid) {
    if (n_ % 8 == 0) bits_.push_back(0);
    if (valid) bits_.back() |= static_cast<uint8_t>(1u << (n_ % 8));
    else ++nulls_;
    ++n_;
  }
  size_t size() const { return n_; }
  void reserve(size_t n) { bits_.reserve((n + 7) / 8); }
  void clear() {  // (keeps the memory for the next block)
    bits_.clear();
    n_ = nulls_ = 0;
  }
  // back to the first n values (a row given up half way)
  void truncate(size_t n) {
    while (n_ > n) {
      --n_;
      uint8_t bit = static_cast<uint8_t>(1u << (n_ % 8));
      if (!(bits_.back() & bit)) --nulls_;
      bits_.back() &= static_cast<uint8_t>(~bit);
      if (n_ % 8 == 0) bits_.pop_back();
    }
  }
  // None when every row is valid (Arrow then needs no bitmap)
  PyObject* to_py() const {
    if (nulls_ == 0) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(bits_.data()), bits_.size());
  }

 private:
  std::vector<uint8_t> bits_;
  size_t n_ = 0, nulls_ = 0;
};

class StrCol {
 public:
  StrCol() { offsets_.push_back(0); }
  void add(std::string_view s) {
    data_.append(s);
    close();
  }
  // append pieces to buf() and then close() for one value built in place
  std::string& buf() { return data_; }
  void close() {
    push_offset();
    valid_.push(true);
  }
  void null() {
    push_offset();
    valid_.push(false);
  }
  size_t size() const { return valid_.size(); }
  // room for n values of ``bytes`` in all (fewer reallocations and copies of big columns)
  void reserve(size_t n, size_t bytes) {
    offsets_.reserve(n + 1);
    data_.reserve(bytes);
    valid_.reserve(n);
  }
  void clear() {
    data_.clear();
    offsets_.assign(1, 0);
    valid_.clear();
  }
  size_t capacity_bytes() const { return data_.capacity() + offsets_.capacity() * sizeof(int32_t); }
  void truncate(size_t n) {  // (n <= size())
    offsets_.resize(n + 1);
    data_.resize(static_cast<size_t>(offsets_.back()));
    valid_.truncate(n);
  }
  // ("str", n, validity | None, offsets, data)
  PyObject* to_py() const {
    return Py_BuildValue("(snNy#y#)", "str", static_cast<Py_ssize_t>(size()), valid_.to_py(),
                         reinterpret_cast<const char*>(offsets_.data()),
                         static_cast<Py_ssize_t>(offsets_.size() * sizeof(int32_t)), data_.data(),
                         static_cast<Py_ssize_t>(data_.size()));
  }

 private:
  void push_offset() {
    if (data_.size() > static_cast<size_t>(INT32_MAX)) throw Refuse("block too large for int32 offsets");
    offsets_.push_back(static_cast<int32_t>(data_.size()));
  }
  std::string data_;
  std::vector<int32_t> offsets_;
  Validity valid_;
};

template <class T>
class NumCol {
 public:
  explicit NumCol(const char* kind) : kind_(kind) {}
  void add(T x) {
    v_.push_back(x);
    valid_.push(true);
  }
  void null() {
    v_.push_back(T{});
    valid_.push(false);
  }
  size_t size() const { return v_.size(); }
  void reserve(size_t n) {
    v_.reserve(n);
    valid_.reserve(n);
  }
  void clear() {
    v_.clear();
    valid_.clear();
  }
  void truncate(size_t n) {
    v_.resize(n);
    valid_.truncate(n);
  }
  // (kind, n, validity | None, None, values)
  PyObject* to_py() const {
    // (an empty vector's data() may be null, which y# would turn into None)
    const char* data = v_.empty() ? "" : reinterpret_cast<const char*>(v_.data());
    return Py_BuildValue("(snNOy#)", kind_, static_cast<Py_ssize_t>(size()), valid_.to_py(), Py_None, data,
                         static_cast<Py_ssize_t>(v_.size() * sizeof(T)));
  }

 private:
  const char* kind_;
  std::vector<T> v_;
  Validity valid_;
};

using I64Col = NumCol<int64_t>;
using F64Col = NumCol<double>;

// map<string, string> rows: entries appended with key()/value()/null_value(), then close()
// (or null() for a missing map). Python builds a pyarrow MapArray from
// ("map", n, validity | None, offsets, keys, values).
class MapCol {
 public:
  MapCol() { offsets_.push_back(0); }
  StrCol keys, values;
  void close() {
    offsets_.push_back(static_cast<int32_t>(keys.size()));
    valid_.push(true);
  }
  void null() {
    offsets_.push_back(static_cast<int32_t>(keys.size()));
    valid_.push(false);
  }
  size_t size() const { return valid_.size(); }
  void clear() {
    keys.clear();
    values.clear();
    offsets_.assign(1, 0);
    valid_.clear();
  }
  size_t capacity_bytes() const { return keys.capacity_bytes() + values.capacity_bytes(); }
  void truncate(size_t n) {
    offsets_.resize(n + 1);
    size_t entries = static_cast<size_t>(offsets_.back());
    keys.truncate(entries);
    values.truncate(entries);
    valid_.truncate(n);
  }
  PyObject* to_py() const {
    return Py_BuildValue("(snNy#NN)", "map", static_cast<Py_ssize_t>(size()), valid_.to_py(),
                         reinterpret_cast<const char*>(offsets_.data()),
                         static_cast<Py_ssize_t>(offsets_.size() * sizeof(int32_t)), keys.to_py(), values.to_py());
  }

 private:
  std::vector<int32_t> offsets_;
  Validity valid_;
};

// --- JSON text as orjson.dumps writes it -------------------------------------------------------
// a JSON string body: the escapes orjson uses (no \u escapes for non-ASCII, none for "/")
inline void json_escape(std::string& out, std::string_view s) {
  static const char* HEXD = "0123456789abcdef";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += HEXD[c >> 4];
          out += HEXD[c & 15];
        } else {
          out += ch;
        }
    }
  }
}

// orjson.dumps(float): shortest round-trip digits, fixed notation for decimal exponents
// -5 < e <= 16 ("0.00001", "1.0"), else "1.5e+300" / "1e-6"
void orjson_float(double d, std::string& out);

// repr(float) (which orjson.dumps matches) where Python writes fixed notation: shortest
// round-trip digits, ".0" for integral values; outside that range refuse
void python_float(double d, std::string& out);

// orjson.dumps(orjson.loads(text)) for a parsed JSON value (a repeated key: printed once, first
// place, last value, as a dict keeps it)
void json_text(simdjson::dom::element v, std::string& out);

// Set d[name] = col.to_py(); false (Python error set) on failure.
template <class Col>
bool put(PyObject* d, const char* name, const Col& col) {
  PyObject* v = col.to_py();
  if (v == nullptr) return false;
  int rc = PyDict_SetItemString(d, name, v);
  Py_DECREF(v);
  return rc == 0;
}

// A block's columns as a new dict (``block.finish(d)`` fills it); null with a Python error set.
template <class Block>
PyObject* columns_dict(Block& block) {
  PyObject* d = PyDict_New();
  if (d != nullptr && !block.finish(d)) Py_CLEAR(d);
  return d;
}

// Run a parser's body: a refusal or a JSON error becomes ValueError (``Unsupported`` on the
// Python side, which then reads the block itself), exhausted memory MemoryError.
template <class Body>
PyObject* python_errors(Body&& body) {
  try {
    return body();
  } catch (const Refuse& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const simdjson::simdjson_error& e) {
    PyErr_Format(PyExc_ValueError, "JSON: %s", e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  }
  return nullptr;
}

// The block parsers (one per source format), registered by module.cpp.
PyObject* parse_otlp_block(PyObject* self, PyObject* args);
PyObject* parse_compose_block(PyObject* self, PyObject* args);

}  // namespace obslab
