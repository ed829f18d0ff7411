# Installs the library, the public headers, the keel command, a pkg-config
# file and a CMake package (find_package(keel) -> keel::keel, keel::keel_static),
# and the example service's source (built against the installed keel with
# its own CMakeLists.txt or pkg-config).
include(CMakePackageConfigHelpers)

install(TARGETS keel keel_static EXPORT keelTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/keel DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")

set(KEEL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/keel)
install(EXPORT keelTargets NAMESPACE keel:: DESTINATION ${KEEL_CMAKE_DIR})
configure_package_config_file(cmake/keelConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/keelConfig.cmake INSTALL_DESTINATION ${KEEL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/keelConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/keelConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/keelConfigVersion.cmake
        DESTINATION ${KEEL_CMAKE_DIR})

string(JOIN " " KEEL_PC_PRIVATE_LIBS ${KEEL_DEP_LINK_FLAGS})
# The .pc file finds its prefix from its own location, so an install with
# --prefix (or DESTDIR, or a moved tree) stays valid.
file(RELATIVE_PATH KEEL_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" KEEL_PC_TO_PREFIX "${KEEL_PC_TO_PREFIX}")
configure_file(cmake/keel.pc.in ${CMAKE_CURRENT_BINARY_DIR}/keel.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/keel.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES examples/advice_service.c examples/CMakeLists.txt
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
