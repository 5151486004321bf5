# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# The AutoQ search engine: sources of the library, the Python bindings and modules, and the C++ tests.
find_package(SQLite3 REQUIRED)
target_sources(heteroq PRIVATE src/autoq/space.cpp src/autoq/goal.cpp src/autoq/storage.cpp
                               src/autoq/search.cpp src/autoq/engine.cpp)
# SQLite stays a private dependency of the shared library: consumers need nothing.
target_link_libraries(heteroq PRIVATE SQLite::SQLite3)
if(TARGET heteroq_python)
  target_sources(heteroq_python PRIVATE python/bindings/autoq.cpp)
endif()
heteroq_python_sources(autoq.py)
if(TARGET heteroq_tests)
  target_sources(heteroq_tests PRIVATE tests/cpp/test_autoq.cpp tests/cpp/test_autoq_refine.cpp)
endif()
