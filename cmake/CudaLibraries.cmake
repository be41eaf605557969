# cuDNN and cuBLAS for the CUDA backend, as the targets fer_cudnn and fer_cublas.
#
# Where they are looked for (FER_CUDA_LIBS_FROM = auto, the default):
#   cuDNN:  1. CUDNN_ROOT (cache variable or environment), 2. the CUDA toolkit's folders,
#           3. the pip wheel nvidia-cudnn-cu13 (python3 is asked for nvidia.cudnn's folder).
#   cuBLAS: 1. the CUDA toolkit (CUDA::cublas, CUDA::cublasLt), 2. the pip wheel nvidia-cublas
#           (nvidia/cu13, or nvidia/cublas for the older cu12 layout).
# FER_CUDA_LIBS_FROM = pip takes both from the wheels only (bench/gpu_suite.sh --rehearse uses it
# to prove a build that cannot see the toolkit's own cuDNN/cuBLAS).
#
# Wheels hold no unversioned links, only libcudnn.so.9 and its sub-libraries (libcudnn_cnn.so.9,
# ...), which libcudnn.so.9 dlopens by soname at run time through its own RUNPATH ($ORIGIN). So the
# targets are IMPORTED SHARED libraries at the full path of the versioned file, and their folder
# goes into the binaries' RPATH (CMake adds the folder of every full-path shared library to the
# build RPATH; FER_CUDA_RPATH below states it for installed binaries too): nothing needs
# LD_LIBRARY_PATH.
set(FER_CUDA_LIBS_FROM "auto" CACHE STRING "Where cuDNN/cuBLAS come from: auto (CUDNN_ROOT, toolkit, pip) or pip")
set_property(CACHE FER_CUDA_LIBS_FROM PROPERTY STRINGS auto pip)
set(CUDNN_ROOT "$ENV{CUDNN_ROOT}" CACHE PATH "cuDNN installation folder (include/, lib/), searched first")
set(FER_PYTHON "" CACHE FILEPATH "Python whose site-packages hold the NVIDIA wheels (default: python3 on PATH)")
if(NOT FER_CUDA_LIBS_FROM MATCHES "^(auto|pip)$")
  message(FATAL_ERROR "FER_CUDA_LIBS_FROM must be auto or pip, not '${FER_CUDA_LIBS_FROM}'")
endif()

# fer_pip_folder(<var> <module>...): the folder of the first importable NVIDIA namespace module.
function(fer_pip_folder out)
  set(${out} "" PARENT_SCOPE)
  set(_py "${FER_PYTHON}")
  if(NOT _py)
    find_program(_fer_python3 NAMES python3 python)
    set(_py "${_fer_python3}")
  endif()
  if(NOT _py)
    return()
  endif()
  foreach(_mod IN LISTS ARGN)
    # Namespace packages (no __init__.py in the wheels) have __path__ but no __file__.
    execute_process(
      COMMAND "${_py}" -c "import importlib, sys; m = importlib.import_module('${_mod}'); print(list(m.__path__)[0])"
      OUTPUT_VARIABLE _dir ERROR_QUIET RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rc EQUAL 0 AND IS_DIRECTORY "${_dir}")
      set(${out} "${_dir}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

# fer_version_from_header(<var> <header> <MAJOR macro> <MINOR macro> <PATCH macro>)
function(fer_version_from_header out header)
  set(_parts "")
  if(EXISTS "${header}")
    file(READ "${header}" _text)
    foreach(_macro IN LISTS ARGN)
      if(_text MATCHES "#define[ \t]+${_macro}[ \t]+([0-9]+)")
        list(APPEND _parts "${CMAKE_MATCH_1}")
      endif()
    endforeach()
  endif()
  list(JOIN _parts "." _v)
  set(${out} "${_v}" PARENT_SCOPE)
endfunction()

# ---------------------------------------------------------------- cuDNN
unset(_cudnn_inc)
unset(_cudnn_lib)
set(_cudnn_source "")
macro(_fer_try_cudnn source)
  if(NOT _cudnn_lib)
    find_path(_cudnn_inc_try cudnn_version.h ${ARGN} PATH_SUFFIXES include NO_DEFAULT_PATH)
    # find_file, not find_library: the soname file libcudnn.so.9 is all a wheel has.
    find_file(_cudnn_lib_try NAMES libcudnn.so.9 libcudnn.so ${ARGN} PATH_SUFFIXES lib lib64 lib/x64 NO_DEFAULT_PATH)
    if(_cudnn_inc_try AND _cudnn_lib_try)
      set(_cudnn_inc "${_cudnn_inc_try}")
      set(_cudnn_lib "${_cudnn_lib_try}")
      set(_cudnn_source "${source}")
    endif()
    unset(_cudnn_inc_try CACHE)
    unset(_cudnn_lib_try CACHE)
  endif()
endmacro()
if(FER_CUDA_LIBS_FROM STREQUAL "auto")
  if(CUDNN_ROOT)
    _fer_try_cudnn("CUDNN_ROOT" HINTS "${CUDNN_ROOT}")
  endif()
  _fer_try_cudnn("CUDA toolkit" HINTS "${CUDAToolkit_LIBRARY_ROOT}" "${CUDAToolkit_LIBRARY_DIR}/.."
                 "${CUDAToolkit_INCLUDE_DIRS}/..")
endif()
fer_pip_folder(FER_PIP_CUDNN_DIR nvidia.cudnn)
if(FER_PIP_CUDNN_DIR)
  _fer_try_cudnn("pip nvidia-cudnn-cu13" HINTS "${FER_PIP_CUDNN_DIR}")
endif()
if(NOT _cudnn_lib)
  message(FATAL_ERROR "cuDNN not found (FER_CUDA_LIBS_FROM=${FER_CUDA_LIBS_FROM}): set CUDNN_ROOT to a folder "
                      "with include/cudnn_version.h and lib/libcudnn.so.9, install it beside the CUDA "
                      "toolkit, or pip-install nvidia-cudnn-cu13 into the python3 that CMake runs "
                      "(FER_PYTHON='${FER_PYTHON}', pip folder '${FER_PIP_CUDNN_DIR}')")
endif()
get_filename_component(_cudnn_real "${_cudnn_lib}" REALPATH)
get_filename_component(FER_CUDNN_LIBRARY_DIR "${_cudnn_real}" DIRECTORY)
set(FER_CUDNN_INCLUDE_DIR "${_cudnn_inc}" CACHE INTERNAL "")
set(FER_CUDNN_LIBRARY "${_cudnn_lib}" CACHE INTERNAL "")
fer_version_from_header(FER_CUDNN_VERSION "${_cudnn_inc}/cudnn_version.h" CUDNN_MAJOR CUDNN_MINOR CUDNN_PATCHLEVEL)
add_library(fer_cudnn SHARED IMPORTED GLOBAL)
set_target_properties(fer_cudnn PROPERTIES
  IMPORTED_LOCATION "${_cudnn_lib}"
  INTERFACE_INCLUDE_DIRECTORIES "${_cudnn_inc}"
  # -I, not -isystem: searched before the toolkit's include folder, which may hold another cudnn.h.
  IMPORTED_NO_SYSTEM TRUE)
message(STATUS "fer_gpu: cuDNN ${FER_CUDNN_VERSION} from ${_cudnn_source}: ${_cudnn_lib} (headers ${_cudnn_inc})")

# ---------------------------------------------------------------- cuBLAS
set(_cublas_source "")
if(FER_CUDA_LIBS_FROM STREQUAL "auto" AND TARGET CUDA::cublas AND TARGET CUDA::cublasLt)
  add_library(fer_cublas INTERFACE)
  target_link_libraries(fer_cublas INTERFACE CUDA::cublas CUDA::cublasLt)
  get_target_property(_cublas_lib CUDA::cublas IMPORTED_LOCATION)
  set(_cublas_inc "${CUDAToolkit_INCLUDE_DIRS}")
  set(_cublas_source "CUDA toolkit")
else()
  fer_pip_folder(FER_PIP_CUBLAS_DIR nvidia.cu13 nvidia.cublas)
  if(FER_PIP_CUBLAS_DIR)
    find_path(_cublas_inc cublas_api.h HINTS "${FER_PIP_CUBLAS_DIR}" PATH_SUFFIXES include NO_DEFAULT_PATH)
    foreach(_n IN ITEMS cublas cublasLt)
      find_file(_cublas_${_n} NAMES lib${_n}.so.13 lib${_n}.so.12 lib${_n}.so HINTS "${FER_PIP_CUBLAS_DIR}"
              PATH_SUFFIXES lib NO_DEFAULT_PATH)
    endforeach()
  endif()
  if(NOT FER_PIP_CUBLAS_DIR OR NOT _cublas_inc OR NOT _cublas_cublas OR NOT _cublas_cublasLt)
    message(FATAL_ERROR "cuBLAS not found (FER_CUDA_LIBS_FROM=${FER_CUDA_LIBS_FROM}): neither the CUDA "
                        "toolkit's nor the pip wheel nvidia-cublas (python3 module nvidia.cu13)")
  endif()
  add_library(fer_cublasLt SHARED IMPORTED GLOBAL)
  set_target_properties(fer_cublasLt PROPERTIES IMPORTED_LOCATION "${_cublas_cublasLt}")
  add_library(fer_cublas_core SHARED IMPORTED GLOBAL)
  set_target_properties(fer_cublas_core PROPERTIES
    IMPORTED_LOCATION "${_cublas_cublas}"
    INTERFACE_INCLUDE_DIRECTORIES "${_cublas_inc}"
    IMPORTED_NO_SYSTEM TRUE)
  add_library(fer_cublas INTERFACE)
  target_link_libraries(fer_cublas INTERFACE fer_cublas_core fer_cublasLt)
  set(_cublas_lib "${_cublas_cublas}")
  set(_cublas_source "pip nvidia-cublas")
  set(_cublas_inc_dir "${_cublas_inc}")
  unset(_cublas_inc CACHE)
  set(_cublas_inc "${_cublas_inc_dir}")
  unset(_cublas_cublas CACHE)
  unset(_cublas_cublasLt CACHE)
endif()
set(_cublas_ver "")
foreach(_d IN LISTS _cublas_inc)
  if(NOT _cublas_ver)
    fer_version_from_header(_cublas_ver "${_d}/cublas_api.h" CUBLAS_VER_MAJOR CUBLAS_VER_MINOR CUBLAS_VER_PATCH)
  endif()
endforeach()
get_filename_component(_cublas_real "${_cublas_lib}" REALPATH)
get_filename_component(FER_CUBLAS_LIBRARY_DIR "${_cublas_real}" DIRECTORY)
set(FER_CUBLAS_VERSION "${_cublas_ver}")
message(STATUS "fer_gpu: cuBLAS ${_cublas_ver} from ${_cublas_source}: ${_cublas_lib}")

# Folders the binaries must search at run time (also put in the install RPATH).
set(FER_CUDA_RPATH "${FER_CUDNN_LIBRARY_DIR}" "${FER_CUBLAS_LIBRARY_DIR}")
list(REMOVE_DUPLICATES FER_CUDA_RPATH)
