# A Debian package of everything `cmake --install` installs (CPack):
#
#   cmake --build build --target package     # or: cd build && cpack -G DEB
#
# gives build/keel_<version>-1_<arch>.deb with the shared and static
# library, the headers, the pkg-config and CMake package files, the keel
# command with the shipped strategies and templates, the Lua module keel.so
# and the example service's source (docs/install.md).
#
# The package installs under the prefix the tree was configured with
# (CMAKE_INSTALL_PREFIX, /usr/local by default), so the paths built into the
# keel command (where it finds the templates) hold. A package for /usr
# comes from a tree configured with -DCMAKE_INSTALL_PREFIX=/usr: the
# library then goes to /usr/lib/<multiarch>, keel.so to
# /usr/lib/<multiarch>/lua/5.4, as the Debian Lua policy has it.
#
# Depends is computed by dpkg-shlibdeps from the libraries the packaged
# programs and libraries link (so a new dependency in KeelDeps.cmake is
# picked up with no change here); it needs dpkg-dev and file. Without them
# the list below is used instead, the Debian 12 runtime packages; keep it
# in step with KeelDeps.cmake.
set(KEEL_DEB_FALLBACK_DEPENDS
    "libc6, libgsl27, libopenblas0 | libblas.so.3, liblapacke, liblua5.4-0, libcsv3, libsqlite3-0, libjansson4, libcairo2"
    CACHE STRING "Depends of the .deb when dpkg-shlibdeps is not available")
set(KEEL_PACKAGE_MAINTAINER "keel maintainers <keel@localhost>" CACHE STRING
    "Maintainer field of the .deb (Name <address>)")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME keel)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR keel)
set(CPACK_PACKAGE_CONTACT "${KEEL_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "portfolio strategy and rebalancing library, with Lua 5.4 strategies")
set(CPACK_PACKAGE_DESCRIPTION [=[keel is a C11 library for portfolio strategy and rebalancing, built to be
linked into backend services: no global state, no printing, no aborting,
every failure a status code with a clear message. It estimates returns and
covariances, optimises portfolios with its own QP solver (mean-variance
with costs, group bounds, turnover caps, whole-lot trade lists), backtests
accounts of sub-accounts with exact transaction costs, runs Monte Carlo
stress tests, keeps results in SQLite, and turns a user profile and
holdings into advice through recommendation templates in sandboxed Lua 5.4.

This package has the shared and static library, the headers, pkg-config
and CMake package files, the keel command with the shipped strategies and
templates, keel.so, the keel module for a stand-alone lua5.4, and the
source of the example advice service.]=])
set(CPACK_STRIP_FILES OFF)
# the source package (cmake --build build --target package_source): the
# tree without its git folder and build folders
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git(/|$)" "/build[^/]*/")
# the configured prefix, for the .deb only (the source package has none);
# cpack reads this file once per generator
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/deb/KeelCPackOptions.cmake
     "if(CPACK_GENERATOR STREQUAL \"DEB\")\n  set(CPACK_PACKAGING_INSTALL_PREFIX \"${CMAKE_INSTALL_PREFIX}\")\nendif()\n")
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_BINARY_DIR}/deb/KeelCPackOptions.cmake)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${KEEL_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# libkeel.so.<major>'s shlibs file, so packages built against it get their
# Depends on keel from dpkg-shlibdeps too (and ldconfig runs on install)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
# CPack runs ldconfig after an install only for libraries under /usr/lib
# and /lib; the trigger makes dpkg run it for /usr/local/lib as well
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/deb/triggers "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_BINARY_DIR}/deb/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
find_program(KEEL_DPKG_SHLIBDEPS dpkg-shlibdeps)
find_program(KEEL_FILE_PROGRAM file)
if(KEEL_DPKG_SHLIBDEPS AND KEEL_FILE_PROGRAM)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  message(STATUS "keel package: no dpkg-shlibdeps or file (apt-get install dpkg-dev file); "
                 "the .deb's Depends will be KEEL_DEB_FALLBACK_DEPENDS")
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "${KEEL_DEB_FALLBACK_DEPENDS}")
endif()
# the Lua module needs an interpreter; linking the static library needs the
# dependencies' -dev packages (shared-library users need none of them)
list(JOIN KEEL_DEP_DEB_DEV_PACKAGES ", " _keel_dev)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "lua5.4, pkg-config, ${_keel_dev}")

include(CPack)
