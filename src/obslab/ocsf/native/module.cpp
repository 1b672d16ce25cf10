// obslab.ocsf._native: simdjson block parsers for the converters' fast paths.
#include "columns.hpp"

static PyMethodDef methods[] = {
    {"parse_otlp_block", obslab::parse_otlp_block, METH_VARARGS,
     "parse_otlp_block(data: bytes) -> dict of FLAT_SPAN column buffers; ValueError(reason) to refuse"},
    {"parse_compose_block", obslab::parse_compose_block, METH_VARARGS,
     "parse_compose_block(data: bytes, first_line_no: int) -> dict of column buffers; ValueError(reason) to refuse"},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
