# FER_SANITIZE / FER_FUZZ: compile and link every target with ASan + UBSan; with FER_FUZZ also
# with libFuzzer's coverage instrumentation (-fsanitize=fuzzer-no-link), so one build serves both
# the sanitized test suite and the fuzz targets (tests/fuzz). UBSan stops at the first report
# (-fno-sanitize-recover) so a test or fuzz run fails instead of printing and carrying on.
if(FER_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "FER_FUZZ=ON needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang")
  endif()
  set(FER_SANITIZE ON CACHE BOOL "" FORCE)
endif()
if(FER_SANITIZE)
  set(_fer_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  if(FER_FUZZ)
    list(APPEND _fer_san -fsanitize=fuzzer-no-link)
  endif()
  add_compile_options(${_fer_san})
  add_link_options(-fsanitize=address,undefined)
  message(STATUS "fer_gpu: sanitizers ON (${_fer_san})")
endif()
