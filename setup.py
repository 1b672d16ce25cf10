"""Only the optional C++ extension lives here; everything else is in pyproject.toml.

``optional=True``: without a compiler or simdjson the install still succeeds and the
converters use their Python readers (slower, same output).
"""

from setuptools import Extension, setup

NATIVE = "src/obslab/ocsf/native/"

setup(
    ext_modules=[
        Extension(
            "obslab.ocsf._native",
            sources=[NATIVE + "module.cpp", NATIVE + "otlp.cpp", NATIVE + "compose.cpp", NATIVE + "jsontext.cpp"],
            depends=[NATIVE + "columns.hpp", NATIVE + "tables.hpp"],
            language="c++",
            # built on the machine that runs it: -march=native lets simdjson use its SIMD kernels
            extra_compile_args=["-std=c++17", "-march=native"],
            libraries=["simdjson"],
            optional=True,
        )
    ]
)
