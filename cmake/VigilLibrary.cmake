# One way to declare a room's library, as abseil's helper does it.
#   vigil_library(NAME core SRCS a.cc b.cc DEPS vigil::other PUBLIC_DEPS fmt::fmt)
# Creates target vigil_<NAME> with alias vigil::<NAME>; includes are written from src/.
function(vigil_compile_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic
    -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wshadow=local)
    # GCC 12 reports false -Wrestrict/-Wstringop-overflow positives inside libstdc++'s string
    # operator+ at -O2/-O3 (GCC bug 105329); they are not in our code.
    target_compile_options(${target} PRIVATE -Wno-restrict -Wno-stringop-overflow)
    if(CMAKE_UNITY_BUILD)
      # GCC warns about file-local types in classes defined outside the main file; in a unity
      # batch every source is "outside the main file", so the warning says nothing there.
      target_compile_options(${target} PRIVATE -Wno-subobject-linkage)
    endif()
  endif()
  if(VIGIL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(vigil_library)
  cmake_parse_arguments(VL "" "NAME" "SRCS;DEPS;PUBLIC_DEPS" ${ARGN})
  set(target vigil_${VL_NAME})
  add_library(${target} STATIC ${VL_SRCS})
  add_library(vigil::${VL_NAME} ALIAS ${target})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${VL_PUBLIC_DEPS} PRIVATE ${VL_DEPS})
  vigil_compile_options(${target})
endfunction()

# vigil_test(NAME room_test SRCS a_test.cc DEPS vigil::room [LABELS root])
function(vigil_test)
  # WHOLE: one CTest test runs the whole binary (named "<target>") instead of one process per
  # case, for binaries whose cases share an expensive fixture (e.g. a PostgreSQL server).
  cmake_parse_arguments(VT "WHOLE" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${VT_NAME} ${VT_SRCS})
  target_link_libraries(${VT_NAME} PRIVATE ${VT_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${VT_NAME} PRIVATE
    VIGIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    VIGIL_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared"
    VIGIL_BINARY="$<TARGET_FILE_DIR:vigil>/vigil")
  vigil_compile_options(${VT_NAME})
  # Test code is not what is measured: -O1 compiles it in two thirds of the time of -O3.
  target_compile_options(${VT_NAME} PRIVATE $<$<CONFIG:Release>:-O1>)
  set(labels ${VT_LABELS})
  if(NOT labels)
    set(labels unit)
  endif()
  # tests/ctest_labels.cmake checks that CTest lists every binary under each of its labels.
  string(REPLACE ";" "," label_csv "${labels}")
  set_property(GLOBAL APPEND PROPERTY VIGIL_TEST_LABELS "${VT_NAME}=${label_csv}")
  # Tests are named "<target>.<Suite>.<Case>", so `ctest -R pipeline_queue_test` selects a binary.
  if(VT_WHOLE)
    add_test(NAME ${VT_NAME} COMMAND ${VT_NAME})
    set_tests_properties(${VT_NAME} PROPERTIES LABELS "${labels}")
  else()
    gtest_discover_tests(${VT_NAME} TEST_PREFIX "${VT_NAME}." DISCOVERY_TIMEOUT 60)
    # Not `PROPERTIES LABELS "${labels}"`: the discovery script flattens that list, so a test
    # declared "unit;root" got LABELS unit and `ctest -L root` missed it. The discovered names
    # are in ${VT_NAME}_TESTS once the binary is built; this file, read by CTest after the
    # discovery's own include file, labels them all.
    set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${VT_NAME}_labels.cmake)
    file(WRITE ${labels_file}
      "if(${VT_NAME}_TESTS)\n"
      "  set_tests_properties(\${${VT_NAME}_TESTS} PROPERTIES LABELS \"${labels}\")\n"
      "endif()\n")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
  endif()
endfunction()
