// Compose log lines -> FLAT_LOG column buffers (being written: refuses every block for now).
#include "columns.hpp"

namespace obslab {

PyObject* parse_compose_block(PyObject*, PyObject*) {
  PyErr_SetString(PyExc_ValueError, "native compose parser not built yet");
  return nullptr;
}

}  // namespace obslab
