# Finds every dependency; a missing one stops configuration and names the
# Debian package that provides it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

set(KEEL_DEP_TARGETS)
set(KEEL_DEP_LINK_FLAGS)
# The Debian -dev packages of the dependencies: what linking the static
# library needs (the .deb suggests them, cmake/KeelPackage.cmake).
set(KEEL_DEP_DEB_DEV_PACKAGES)

# keel_pkg(<var> <debian package> <pkg-config module>...)
macro(keel_pkg var debpkg)
  pkg_search_module(${var} IMPORTED_TARGET GLOBAL ${ARGN})
  if(NOT ${var}_FOUND)
    message(FATAL_ERROR "keel needs ${ARGV2} (pkg-config module ${ARGN} not found): "
                        "apt-get install ${debpkg}")
  endif()
  list(APPEND KEEL_DEP_TARGETS PkgConfig::${var})
  list(APPEND KEEL_DEP_LINK_FLAGS ${${var}_LDFLAGS})
  list(APPEND KEEL_DEP_DEB_DEV_PACKAGES ${debpkg})
endmacro()

keel_pkg(GSL      libgsl-dev      gsl)
keel_pkg(OPENBLAS libopenblas-dev openblas)
keel_pkg(LAPACKE  liblapacke-dev  lapacke)
keel_pkg(LUA      liblua5.4-dev   lua5.4 lua-5.4 lua54)
keel_pkg(SQLITE   libsqlite3-dev  sqlite3)
keel_pkg(JANSSON  libjansson-dev  jansson)
keel_pkg(CAIRO    libcairo2-dev   cairo)

# GSL's pkg-config pulls in its own CBLAS (-lgslcblas); keel links OpenBLAS's
# CBLAS instead, so drop gslcblas from the imported target.
get_target_property(_gsl_libs PkgConfig::GSL INTERFACE_LINK_LIBRARIES)
list(FILTER _gsl_libs EXCLUDE REGEX "gslcblas")
set_target_properties(PkgConfig::GSL PROPERTIES INTERFACE_LINK_LIBRARIES "${_gsl_libs}")
list(FILTER KEEL_DEP_LINK_FLAGS EXCLUDE REGEX "gslcblas")

# libcsv ships no pkg-config file.
find_path(CSV_INCLUDE_DIR csv.h)
find_library(CSV_LIBRARY csv)
if(NOT CSV_INCLUDE_DIR OR NOT CSV_LIBRARY)
  message(FATAL_ERROR "keel needs libcsv (csv.h / libcsv.so not found): apt-get install libcsv-dev")
endif()
add_library(keel_csv_dep INTERFACE IMPORTED GLOBAL)
target_include_directories(keel_csv_dep INTERFACE ${CSV_INCLUDE_DIR})
target_link_libraries(keel_csv_dep INTERFACE ${CSV_LIBRARY})
list(APPEND KEEL_DEP_TARGETS keel_csv_dep)
list(APPEND KEEL_DEP_LINK_FLAGS -lcsv)
list(APPEND KEEL_DEP_DEB_DEV_PACKAGES libcsv-dev)

find_package(Threads REQUIRED)
list(APPEND KEEL_DEP_TARGETS Threads::Threads m)
list(APPEND KEEL_DEP_LINK_FLAGS -pthread -lm)

if(KEEL_BUILD_TESTS)
  # the report test frees fontconfig's caches at its end (FcFini), so
  # valgrind sees no memory left behind
  pkg_search_module(FONTCONFIG IMPORTED_TARGET GLOBAL fontconfig)
  if(NOT FONTCONFIG_FOUND)
    message(FATAL_ERROR "keel's tests need fontconfig: apt-get install libfontconfig-dev")
  endif()
  pkg_search_module(CMOCKA IMPORTED_TARGET GLOBAL cmocka)
  if(NOT CMOCKA_FOUND)
    message(FATAL_ERROR "keel's tests need cmocka: apt-get install libcmocka-dev "
                        "(or configure with -DKEEL_BUILD_TESTS=OFF)")
  endif()
endif()
