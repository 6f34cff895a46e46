# SPDX-License-Identifier: MIT
# syncmap_criterion_test(NAME [SOURCE file] [TIMEOUT s] [LABELS ...] [LIBS ...] [DEFS ...] [LOCKS ...])
#
# One test executable (from SOURCE, default NAME.c, linked with the test
# helpers and Criterion), and one ctest test per Test(suite, name) in it,
# run alone with --filter.  A test that skips (no root, no loop device, no
# DAX) so shows as skipped in ctest's summary instead of hiding inside a
# passing binary; a test must print its own [PASS] line to pass.
find_library(CRITERION_LIBRARY criterion REQUIRED)
find_path(CRITERION_INCLUDE_DIR criterion/criterion.h REQUIRED)

function(syncmap_criterion_test name)
  cmake_parse_arguments(T "" "TIMEOUT;SOURCE" "LABELS;LIBS;DEFS;LOCKS" ${ARGN})
  if(NOT T_SOURCE)
    set(T_SOURCE ${name}.c)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  get_filename_component(_src ${T_SOURCE} ABSOLUTE)
  add_executable(${name} ${_src})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE ${T_DEFS})
  target_link_libraries(${name} PRIVATE ${T_LIBS} syncmap_test_helpers ${CRITERION_LIBRARY} Threads::Threads)
  # Re-read the test list whenever the source changes.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_src})
  file(STRINGS ${_src} _decls REGEX "^Test\\([a-z_0-9]+, *[a-z_0-9]+")
  foreach(_d IN LISTS _decls)
    string(REGEX REPLACE "^Test\\(([a-z_0-9]+), *([a-z_0-9]+).*" "\\1;\\2" _sn "${_d}")
    list(GET _sn 0 _suite)
    list(GET _sn 1 _test)
    add_test(NAME ${_suite}.${_test} COMMAND ${name} --verbose --ascii --filter ${_suite}/${_test})
    set_tests_properties(${_suite}.${_test} PROPERTIES
      TIMEOUT ${T_TIMEOUT}
      LABELS "${T_LABELS}"
      PASS_REGULAR_EXPRESSION "\\[PASS\\] ${_suite}::${_test}: "
      SKIP_REGULAR_EXPRESSION "\\[SKIP\\] ${_suite}::${_test}: "
      FAIL_REGULAR_EXPRESSION "\\[FAIL\\]|Crashing: [1-9]|Failing: [1-9]")
    if(T_LOCKS)
      set_tests_properties(${_suite}.${_test} PROPERTIES RESOURCE_LOCK "${T_LOCKS}")
    endif()
  endforeach()
endfunction()
