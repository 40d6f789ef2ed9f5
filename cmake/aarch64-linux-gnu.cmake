# Cross-compiling for linux-arm64 with Debian's g++-aarch64-linux-gnu (.ci/prebuild.sh uses this).
# Asio and msgpack-cxx are header-only and the same for every architecture; .ci/prebuild.sh points
# ASIO_INCLUDE_DIR and MSGPACK_CXX_INCLUDE_DIR at a folder holding only them, so that the host's
# /usr/include (with its x86_64 glibc headers) never reaches the cross compiler's search path.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_STRIP aarch64-linux-gnu-strip)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
