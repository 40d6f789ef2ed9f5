#!/usr/bin/env bash
# Builds the Node-API addon, Release and stripped, into prebuilds/<platform>-<arch>/switchboard.node
# for each target named (default: this machine's own, linux-x64 here):
#   linux-x64    the host's g++
#   linux-arm64  Debian's g++-aarch64-linux-gnu (cmake/aarch64-linux-gnu.cmake)
#   win32-x64    Debian's mingw-w64, -posix flavour (cmake/x86_64-w64-mingw32.cmake), linked
#                against node.exe's import library made here from node-api-headers' def file,
#                and statically against libstdc++, libgcc and winpthread
# darwin-x64 and darwin-arm64 are built by .github/workflows/macos.yml on hosted macOS runners.
# Needs `npm ci` (node-api-headers, node-addon-api) and .ci/deps; downloads nothing.
# Usage: bash .ci/prebuild.sh [target...]   (npm run build:prebuild builds the host's)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SWITCHBOARD_JOBS:-2}  # the machines this runs on are shared (as test/fuzz/run.sh)

host_target() {
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
  esac
  case "$(uname -s)" in
    Linux) echo "linux-$arch" ;;
    Darwin) echo "darwin-$arch" ;;
    *) echo "unknown-$arch" ;;
  esac
}

# Asio and msgpack-cxx are header-only and architecture-independent, but they live in the host's
# /usr/include beside its x86_64 glibc headers: a cross compiler must see them alone.
deps_include() {
  local dir=build-prebuild-deps/include
  mkdir -p "$dir"
  for h in asio asio.hpp msgpack msgpack.hpp; do
    [[ -e /usr/include/$h ]] || { echo "prebuild: /usr/include/$h is missing (bash .ci/deps)" >&2; exit 1; }
    ln -sfn "/usr/include/$h" "$dir/$h"
  done
  echo "$PWD/$dir"
}

build() {
  local target=$1 dir=build-prebuild-$1 strip=strip
  local -a extra=() strip_args=(--strip-unneeded)
  [[ $target == darwin-* ]] && strip_args=(-x)  # macOS's strip: local symbols only
  case "$target" in
    "$(host_target)") ;;
    linux-arm64)
      local inc
      inc=$(deps_include)
      extra=(-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake"
        -DASIO_INCLUDE_DIR="$inc" -DMSGPACK_CXX_INCLUDE_DIR="$inc")
      strip=aarch64-linux-gnu-strip
      ;;
    win32-x64)
      local inc
      inc=$(deps_include)
      extra=(-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/x86_64-w64-mingw32.cmake"
        -DASIO_INCLUDE_DIR="$inc" -DMSGPACK_CXX_INCLUDE_DIR="$inc")
      strip=x86_64-w64-mingw32-strip
      ;;
    *)
      echo "prebuild: no recipe for '$target' on this machine (host: $(host_target)); known:" \
        "linux-x64, linux-arm64, win32-x64 (darwin-* come from .github/workflows/macos.yml)" >&2
      exit 1
      ;;
  esac
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DSWITCHBOARD_WERROR=ON -DSWITCHBOARD_TESTS=OFF \
    -DSWITCHBOARD_EXAMPLES=OFF -DSWITCHBOARD_ADDON=ON "${extra[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs" --target switchboard_addon
  mkdir -p "prebuilds/$target"
  "$strip" "${strip_args[@]}" -o "prebuilds/$target/switchboard.node" "$dir/addon/switchboard.node"
  echo "prebuild: prebuilds/$target/switchboard.node ($(du -k "prebuilds/$target/switchboard.node" | cut -f1) KiB)"
  if [[ $target == win32-x64 ]]; then check_windows_imports "prebuilds/$target/switchboard.node"; fi
}

# The Windows binary must need nothing but the executable that loads it (node.exe or electron.exe,
# delay-loaded, so not in the import table) and DLLs every Windows has: no libstdc++-6.dll,
# libgcc_s_seh-1.dll or libwinpthread-1.dll, which a user's machine does not have.
check_windows_imports() {
  local dlls
  dlls=$(x86_64-w64-mingw32-objdump -p "$1" | sed -nE 's/^\s*DLL Name: (.*)$/\1/p' | sort -u | tr '\n' ' ')
  local delayed
  delayed=$(strings -a "$1" | grep -ixE 'node\.exe' | head -1 || true)
  echo "prebuild: win32-x64 imports: ${dlls}(delay-loaded: ${delayed:-none})"
  for dll in $dlls; do
    case ${dll,,} in
      kernel32.dll | msvcrt.dll | advapi32.dll | ws2_32.dll) ;;
      *) echo "prebuild: $1 needs $dll, which is not part of Windows" >&2; exit 1 ;;
    esac
  done
  [[ -n $delayed ]] || { echo "prebuild: $1 does not delay-load node.exe" >&2; exit 1; }
}

targets=("$@")
((${#targets[@]})) || targets=("$(host_target)")
for t in "${targets[@]}"; do build "$t"; done
