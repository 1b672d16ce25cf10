// obslab.ocsf._native: simdjson block parsers for the converters' fast paths.
#include <cstring>

#include "columns.hpp"

// count_newlines(data) -> int: memchr runs at memory speed; bytes.count(b"\n") does not
static PyObject* count_newlines(PyObject*, PyObject* args) {
  const char* buf;
  Py_ssize_t len;
  if (!PyArg_ParseTuple(args, "y#", &buf, &len)) return nullptr;
  Py_ssize_t n = 0;
  const char* end = buf + len;
  for (const char* p = buf; p < end; ++n) {
    p = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
    if (p == nullptr) break;
    ++p;
  }
  return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"parse_otlp_block", obslab::parse_otlp_block, METH_VARARGS,
     "parse_otlp_block(data: bytes) -> dict of FLAT_SPAN column buffers; ValueError(reason) to refuse"},
    {"parse_compose_block", obslab::parse_compose_block, METH_VARARGS,
     "parse_compose_block(data: bytes, first_line_no: int) -> dict of column buffers; ValueError(reason) to refuse"},
    {"count_newlines", count_newlines, METH_VARARGS, "count_newlines(data: bytes) -> int"},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
