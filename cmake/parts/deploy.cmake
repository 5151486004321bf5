# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# The integer inference engine (docs/deploy_engine.md): the torch-free library heteroq_deploy
# (Eigen and the standard library only), the compile step in heteroq, the Python bindings and
# module, the C++ tests and the benchmark.
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
add_library(heteroq_deploy SHARED
  src/deploy/engine.cpp
  src/deploy/engine_file.cpp
  src/deploy/engine_header.cpp)
add_library(heteroq::heteroq_deploy ALIAS heteroq_deploy)
target_include_directories(heteroq_deploy
  PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  PRIVATE
    ${PROJECT_SOURCE_DIR}/src)
target_compile_features(heteroq_deploy PUBLIC cxx_std_17)
# Header-only dependencies, private: consumers of the engine need neither.
target_link_libraries(heteroq_deploy PRIVATE $<BUILD_INTERFACE:Eigen3::Eigen>
  $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>)
# -O3: the int16 dot products vectorize (pmaddwd); no -ffast-math: the input quantizer rounds with
# float additions.
target_compile_options(heteroq_deploy PRIVATE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-O3 -Wall -Wextra -Wno-unused-parameter -ffp-contract=off>)
set_target_properties(heteroq_deploy PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
if(HETEROQ_PYTHON_OUTPUT_DIR)
  set_target_properties(heteroq_deploy PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${HETEROQ_PYTHON_OUTPUT_DIR}
    INSTALL_RPATH "$ORIGIN" BUILD_WITH_INSTALL_RPATH ON)
else()
  set_target_properties(heteroq_deploy PROPERTIES VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR})
endif()

# The compile step (model -> engine) lives in the main library.
target_sources(heteroq PRIVATE src/deploy/compile.cpp)
target_link_libraries(heteroq PUBLIC heteroq_deploy)

if(TARGET heteroq_python)
  target_sources(heteroq_python PRIVATE python/bindings/deploy.cpp)
endif()
heteroq_python_sources(deploy.py)
if(TARGET heteroq_tests)
  target_sources(heteroq_tests PRIVATE tests/cpp/test_deploy.cpp)
  target_compile_definitions(heteroq_tests PRIVATE
    HETEROQ_CXX_COMPILER="${CMAKE_CXX_COMPILER}" HETEROQ_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  # Loads an engine file and runs it, linked without LibTorch (tests/python/test_deploy.py).
  add_executable(heteroq_deploy_run tests/cpp/test_deploy_standalone.cpp)
  target_link_libraries(heteroq_deploy_run PRIVATE heteroq_deploy)
endif()


# Installed in an export set of its own (heteroqDeployTargets.cmake), so that
# find_package(heteroq COMPONENTS deploy) provides heteroq::heteroq_deploy without Torch
# (cmake/heteroqConfig.cmake.in; the set is installed with the others in CMakeLists.txt).
if(HETEROQ_INSTALL)
  install(TARGETS heteroq_deploy EXPORT heteroqDeployTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()

if(HETEROQ_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
  add_executable(bench_deploy benchmarks/bench_deploy.cpp)
  target_link_libraries(bench_deploy PRIVATE heteroq::heteroq benchmark::benchmark)
endif()
