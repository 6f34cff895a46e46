# SPDX-License-Identifier: MIT
# Packaging.cmake -- Debian packages from the build: `cpack -G DEB` in the
# build directory gives
#   libsyncmap0      the shared library (component lib)
#   libsyncmap-dev   header, libsyncmap.so, the static archive, pkg-config and
#                    CMake files, man pages 3 and 7 (component dev)
#   syncmap-tools    syncmap-info, syncmap-run, the preload shim and their man
#                    pages (component tools)
# tests/package/run.sh builds them, installs them, uses them and runs lintian.

# Each package carries its copyright file and a changelog, as Debian policy
# asks of every binary package (lintian: no-copyright-file).
set(_pkg_doc ${PROJECT_BINARY_DIR}/package-doc)
string(TIMESTAMP _pkg_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
foreach(_comp lib dev tools)
  if(_comp STREQUAL "lib")
    set(_name libsyncmap${PROJECT_VERSION_MAJOR})
  elseif(_comp STREQUAL "dev")
    set(_name libsyncmap-dev)
  else()
    set(_name syncmap-tools)
  endif()
  set(_dir ${_pkg_doc}/${_name})
  file(MAKE_DIRECTORY ${_dir})
  configure_file(${PROJECT_SOURCE_DIR}/cmake/copyright.in ${_dir}/copyright @ONLY)
  file(WRITE ${_dir}/changelog.Debian
    "${_name} (${PROJECT_VERSION}-1) unstable; urgency=medium\n\n"
    "  * Built from the libsyncmap source tree; see CHANGELOG.md there.\n\n"
    " -- libsyncmap developers <libsyncmap@users.noreply.github.com>  ${_pkg_date}\n")
  add_custom_command(OUTPUT ${_dir}/changelog.Debian.gz
    COMMAND gzip -9nf -k ${_dir}/changelog.Debian
    DEPENDS ${_dir}/changelog.Debian VERBATIM)
  list(APPEND _pkg_doc_files ${_dir}/changelog.Debian.gz)
  install(FILES ${_dir}/copyright ${_dir}/changelog.Debian.gz
    DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${_name} COMPONENT ${_comp})
endforeach()
add_custom_target(syncmap_package_doc ALL DEPENDS ${_pkg_doc_files})

set(CPACK_PACKAGE_NAME libsyncmap)
set(CPACK_PACKAGE_VENDOR "libsyncmap developers")
set(CPACK_PACKAGE_CONTACT "libsyncmap developers <libsyncmap@users.noreply.github.com>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "MAP_SYNC guarantee on every Linux filesystem")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_COMPONENTS_ALL lib dev tools)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/libsyncmap/libsyncmap")

# Packages install under /usr: configure with -DCMAKE_INSTALL_PREFIX=/usr so
# that GNUInstallDirs picks Debian's multiarch libdir and syncmap-run points
# at the shim where the package puts it.
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "packages: CMAKE_INSTALL_PREFIX is ${CMAKE_INSTALL_PREFIX}; Debian packages want /usr")
endif()

# A shlibs file for the library; the ldconfig trigger for the packages that
# put shared objects in the linker's directories (lintian: lacks-ldconfig-trigger).
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
file(WRITE ${_pkg_doc}/triggers "activate-noawait ldconfig\n")

set(CPACK_DEBIAN_LIB_PACKAGE_NAME libsyncmap${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_LIB_PACKAGE_CONTROL_EXTRA ${_pkg_doc}/triggers)
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA ${_pkg_doc}/triggers)
set(CPACK_DEBIAN_LIB_DESCRIPTION "libsyncmap gives shared writable file mappings the guarantee of the
 kernel's MAP_SYNC flag on every filesystem: while a block is writably
 mapped, it is allocated in the file and survives a crash.  Programs can
 then persist their stores with cache-line flushes or a ranged msync.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libsyncmap-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libsyncmap${PROJECT_VERSION_MAJOR} (= ${PROJECT_VERSION}-1), libpmem2-dev, libuv1-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION "The header, the static library, pkg-config and CMake package files and the
 manual pages of the libsyncmap API.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME syncmap-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "syncmap-info shows what libsyncmap would do for a path; syncmap-run runs an
 unmodified program under the LD_PRELOAD shim libsyncmap-preload.so, which
 gives its shared writable file mappings the guarantee.")

include(CPack)
