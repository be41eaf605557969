# Host-side dependencies. Each is looked up in the system first, then in FER_DEPS_DIR.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)

find_package(tomlplusplus 3 QUIET)
if(NOT TARGET tomlplusplus::tomlplusplus)
  find_path(FER_TOMLPP_INCLUDE toml++/toml.h REQUIRED)
  add_library(tomlplusplus::tomlplusplus INTERFACE IMPORTED)
  target_include_directories(tomlplusplus::tomlplusplus INTERFACE "${FER_TOMLPP_INCLUDE}")
endif()

find_package(CLI11 2 QUIET)
if(NOT TARGET CLI11::CLI11)
  find_path(FER_CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE "${FER_CLI11_INCLUDE}")
endif()

# nlohmann/json (header-only) writes and reads every JSON file and stream of fer_gpu (history.json,
# bench --json, predict --json, export metadata). Debian/Ubuntu: nlohmann-json3-dev.
find_package(nlohmann_json 3 QUIET)
if(NOT TARGET nlohmann_json::nlohmann_json)
  find_path(FER_NLOHMANN_JSON_INCLUDE nlohmann/json.hpp)
  if(NOT FER_NLOHMANN_JSON_INCLUDE)
    message(FATAL_ERROR "nlohmann/json not found: install nlohmann-json3-dev "
                        "(or stage nlohmann/json.hpp under FER_DEPS_DIR/include: bench/stage_deps.sh)")
  endif()
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  target_include_directories(nlohmann_json::nlohmann_json INTERFACE "${FER_NLOHMANN_JSON_INCLUDE}")
endif()

# stb is header-only; loaders/ compiles its implementation once.
find_path(FER_STB_INCLUDE stb_image.h PATH_SUFFIXES stb REQUIRED)

# libexif reads a JPEG's EXIF Orientation (loaders/image_io.cpp). Debian/Ubuntu: libexif-dev.
find_path(FER_EXIF_INCLUDE libexif/exif-data.h REQUIRED)
find_library(FER_EXIF_LIBRARY exif REQUIRED)
add_library(fer_libexif INTERFACE IMPORTED)
target_include_directories(fer_libexif INTERFACE "${FER_EXIF_INCLUDE}")
target_link_libraries(fer_libexif INTERFACE "${FER_EXIF_LIBRARY}")

# OpenBLAS (threaded) for the CPU backend's GEMMs.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(FER_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas-pthread openblas x86_64-linux-gnu/openblas-pthread REQUIRED)
set(_blas_version "")
if(EXISTS "${FER_CBLAS_INCLUDE}/openblas_config.h")
  file(STRINGS "${FER_CBLAS_INCLUDE}/openblas_config.h" _blas_version REGEX "define OPENBLAS_VERSION")
  string(REGEX REPLACE ".*OpenBLAS ([0-9.]+).*" "\\1" _blas_version "${_blas_version}")
endif()
message(STATUS "fer_gpu: BLAS OpenBLAS ${_blas_version}: ${BLAS_LIBRARIES} (cblas.h in ${FER_CBLAS_INCLUDE})")

# oneDNN (optional) for the CPU backend's convolutions: AUTO uses it when found, ON requires it,
# OFF leaves the im2col + OpenBLAS path alone. Debian/Ubuntu: libdnnl-dev (2.x, OpenMP runtime).
set(FER_ONEDNN "AUTO" CACHE STRING "oneDNN convolutions on the CPU: AUTO, ON or OFF")
set_property(CACHE FER_ONEDNN PROPERTY STRINGS AUTO ON OFF)
set(FER_HAVE_ONEDNN OFF)
if(NOT FER_ONEDNN STREQUAL "OFF")
  find_path(FER_DNNL_INCLUDE dnnl.hpp PATH_SUFFIXES oneapi/dnnl)
  find_library(FER_DNNL_LIBRARY dnnl)
  if(FER_DNNL_INCLUDE AND FER_DNNL_LIBRARY)
    add_library(fer_dnnl INTERFACE IMPORTED)
    target_include_directories(fer_dnnl INTERFACE "${FER_DNNL_INCLUDE}")
    target_link_libraries(fer_dnnl INTERFACE "${FER_DNNL_LIBRARY}")
    set(FER_HAVE_ONEDNN ON)
    message(STATUS "fer_gpu: oneDNN convolutions ON (${FER_DNNL_LIBRARY})")
  elseif(FER_ONEDNN STREQUAL "ON")
    message(FATAL_ERROR "FER_ONEDNN=ON but oneDNN (dnnl.hpp, libdnnl) was not found: install libdnnl-dev")
  else()
    message(STATUS "fer_gpu: oneDNN not found, CPU convolutions use im2col + OpenBLAS")
  endif()
endif()

if(FER_BUILD_TESTS)
  # Staged sources win over an installed GoogleTest: a build against FER_DEPS_DIR (the GPU
  # machine, the rehearsal) must not pick up this machine's libgtest-dev, which CMake's FindGTest
  # still finds under /usr when CMAKE_IGNORE_PREFIX_PATH hides /usr (seen in the rehearsal).
  if(NOT (FER_DEPS_DIR AND EXISTS "${FER_DEPS_DIR}/googletest/CMakeLists.txt"))
    find_package(GTest QUIET)
  endif()
  if(NOT TARGET GTest::gtest_main)
    set(_gtest_src "")
    foreach(_dir "${FER_DEPS_DIR}/googletest" /usr/src/googletest)
      if(EXISTS "${_dir}/CMakeLists.txt")
        set(_gtest_src "${_dir}")
        break()
      endif()
    endforeach()
    if(NOT _gtest_src)
      message(FATAL_ERROR "GoogleTest not found: install libgtest-dev or stage its sources in FER_DEPS_DIR/googletest")
    endif()
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory("${_gtest_src}" "${CMAKE_BINARY_DIR}/_googletest" EXCLUDE_FROM_ALL)
    # GoogleTest 1.11+ defines these aliases itself; older sources do not.
    if(NOT TARGET GTest::gtest)
      add_library(GTest::gtest ALIAS gtest)
    endif()
    if(NOT TARGET GTest::gtest_main)
      add_library(GTest::gtest_main ALIAS gtest_main)
    endif()
  endif()
endif()

# ONNX (optional) for `fer_gpu export --format onnx`: the ModelProto classes and onnx::checker of
# Debian's libonnx-dev (ONNX 1.12, protobuf 3.21). AUTO uses it when found, ON requires it, OFF
# builds fer_gpu without export (the command then says how to get it).
set(FER_ONNX "AUTO" CACHE STRING "ONNX export: AUTO, ON or OFF")
set_property(CACHE FER_ONNX PROPERTY STRINGS AUTO ON OFF)
set(FER_HAVE_ONNX OFF)
if(NOT FER_ONNX STREQUAL "OFF")
  find_package(Protobuf QUIET)
  find_package(ONNX QUIET)
  if(TARGET onnx AND TARGET protobuf::libprotobuf)
    set(FER_HAVE_ONNX ON)
    message(STATUS "fer_gpu: ONNX export ON")
  elseif(FER_ONNX STREQUAL "ON")
    message(FATAL_ERROR "FER_ONNX=ON but ONNX was not found: install libonnx-dev libprotobuf-dev")
  else()
    message(STATUS "fer_gpu: ONNX not found (libonnx-dev, libprotobuf-dev), fer_gpu export is off")
  endif()
endif()

# OpenCV (optional) for finding faces in photos (objdetect's cascade classifier, imgproc's area
# resize and drawing); the export tests also run the ONNX file through its DNN module. Debian's
# per-module packages ship no CMake config, so the libraries are looked up one by one.
set(FER_OPENCV "AUTO" CACHE STRING "OpenCV face detection: AUTO, ON or OFF")
set_property(CACHE FER_OPENCV PROPERTY STRINGS AUTO ON OFF)
set(FER_HAVE_OPENCV OFF)
if(NOT FER_OPENCV STREQUAL "OFF")
  find_path(FER_OPENCV_INCLUDE opencv2/objdetect.hpp PATH_SUFFIXES opencv4)
  set(_cv_libs "")
  foreach(_m core imgproc objdetect)
    find_library(FER_OPENCV_${_m}_LIBRARY opencv_${_m})
    if(FER_OPENCV_${_m}_LIBRARY)
      list(APPEND _cv_libs "${FER_OPENCV_${_m}_LIBRARY}")
    else()
      set(_cv_missing ON)
    endif()
  endforeach()
  # The frontal-face cascade of Debian's opencv-data.
  find_file(FER_FACE_CASCADE haarcascade_frontalface_default.xml
            PATHS /usr/share/opencv4/haarcascades /usr/share/opencv/haarcascades /usr/local/share/opencv4/haarcascades)
  if(FER_OPENCV_INCLUDE AND NOT _cv_missing AND FER_FACE_CASCADE)
    add_library(fer_opencv INTERFACE IMPORTED)
    target_include_directories(fer_opencv INTERFACE "${FER_OPENCV_INCLUDE}")
    target_link_libraries(fer_opencv INTERFACE ${_cv_libs})
    set(FER_HAVE_OPENCV ON)
    message(STATUS "fer_gpu: OpenCV face detection ON (${FER_FACE_CASCADE})")
    find_library(FER_OPENCV_dnn_LIBRARY opencv_dnn)
    find_path(FER_OPENCV_DNN_INCLUDE opencv2/dnn.hpp PATH_SUFFIXES opencv4)
    if(FER_OPENCV_dnn_LIBRARY AND FER_OPENCV_DNN_INCLUDE)
      add_library(fer_opencv_dnn INTERFACE IMPORTED)
      target_link_libraries(fer_opencv_dnn INTERFACE fer_opencv "${FER_OPENCV_dnn_LIBRARY}")
    endif()
  elseif(FER_OPENCV STREQUAL "ON")
    message(FATAL_ERROR "FER_OPENCV=ON but OpenCV (objdetect, imgproc) or the frontal-face cascade was not found: "
                        "install libopencv-objdetect-dev opencv-data")
  else()
    message(STATUS "fer_gpu: OpenCV not found (libopencv-objdetect-dev, opencv-data), face detection is off")
  endif()
endif()
