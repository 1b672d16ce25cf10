"""Only the optional C++ extension lives here; everything else is in pyproject.toml.

``optional=True``: without a compiler or simdjson the install still succeeds and the
converters use their Arrow fast paths (slower, same output).
"""

from setuptools import Extension, setup

NATIVE = "src/obslab/ocsf/native/"

setup(
    ext_modules=[
        Extension(
            "obslab.ocsf._native",
            sources=[NATIVE + "module.cpp", NATIVE + "otlp.cpp", NATIVE + "compose.cpp"],
            depends=[NATIVE + "columns.hpp"],
            language="c++",
            # built on the machine that runs it: -march=native lets simdjson use its SIMD kernels
            extra_compile_args=["-std=c++17", "-march=native"],
            libraries=["simdjson"],
            optional=True,
        )
    ]
)
