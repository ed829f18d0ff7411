# The API reference: `cmake --build build --target docs` runs Doxygen over
# every public header (docs/Doxyfile.in) into build/docs/html. Any Doxygen
# warning fails the target; the docs_api test (tests/docs/check_api_docs.sh)
# builds it on every test run.
find_package(Doxygen QUIET)
set(KEEL_DOCS_OUT ${CMAKE_CURRENT_BINARY_DIR}/docs)
if(DOXYGEN_FOUND)
  configure_file(${CMAKE_CURRENT_SOURCE_DIR}/docs/Doxyfile.in ${KEEL_DOCS_OUT}/Doxyfile @ONLY)
  add_custom_target(docs
    COMMAND Doxygen::doxygen ${KEEL_DOCS_OUT}/Doxyfile
    WORKING_DIRECTORY ${KEEL_DOCS_OUT}
    COMMENT "API reference (Doxygen) into ${KEEL_DOCS_OUT}/html"
    VERBATIM)
else()
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E echo "doxygen was not found when CMake ran: install it (apt-get install doxygen) and run cmake again"
    COMMAND ${CMAKE_COMMAND} -E false
    VERBATIM)
endif()
